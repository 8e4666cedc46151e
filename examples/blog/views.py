"""A blog: published posts, counts and aggregates, bulk publish and a JSON API."""

import asyncio
import json

from django.core.exceptions import ValidationError
from django.db.models import Count, Max, Min
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.utils import timezone

import dualcall

from .models import Comment, Post, Tag


def csrf_exempt(view):
    """Exempt a JSON API view from CSRF checks (its clients send no cookie-based forms).

    Django 4.2's ``csrf_exempt`` wraps an async view in a sync function
    (fixed in 5.0), so set the flag the middleware reads.
    """
    view.csrf_exempt = True
    return view


def published_posts():
    return (
        Post.objects.filter(published=True)
        .prefetch_related("tags")
        .annotate(comment_count=Count("comments"))
        .order_by("-published_at", "pk")  # Meta.ordering is not applied with GROUP BY
    )


async def post_list(request):
    posts = []
    async for post in published_posts():  # async iteration; tags are prefetched
        posts.append(post)
    return render(request, "blog/post_list.html", {"posts": posts})


async def post_detail(request, slug):
    try:
        post = await Post.objects.get(slug=slug, published=True)
    except Post.DoesNotExist:
        raise Http404("No such post.") from None
    comments = await post.comments.all()  # reverse FK: a list
    tags = await post.a.tags  # M2M through the .a namespace: a list
    return render(
        request, "blog/post_detail.html", {"post": post, "comments": comments, "tags": tags}
    )


def post_json(post):
    return {
        "id": post.pk,
        "title": post.title,
        "slug": post.slug,
        "published": post.published,
        "tags": [tag.name for tag in post.tags.all()],  # prefetched
        "comments": post.comment_count,
    }


@csrf_exempt
async def api_posts(request):
    """GET: every post.  POST (JSON): create one; invalid input is a 400 and writes nothing."""
    if request.method == "GET":
        posts = (
            await Post.objects.prefetch_related("tags")
            .annotate(comment_count=Count("comments"))
            .order_by("pk")
        )
        return JsonResponse({"posts": [post_json(post) for post in posts]})
    if request.method != "POST":
        return JsonResponse({"errors": {"__all__": ["Use GET or POST."]}}, status=405)
    try:
        data = json.loads(request.body)
        if not isinstance(data, dict):
            raise ValueError
    except ValueError:
        errors = {"__all__": ["The body must be a JSON object."]}
        return JsonResponse({"errors": errors}, status=400)
    tag_names = data.get("tags", [])
    post = Post(
        title=str(data.get("title", "")),
        body=str(data.get("body", "")),
        published=bool(data.get("published", False)),
    )
    try:
        async with dualcall.atomic():
            await post.full_clean()  # validate_unique() queries: dual
            await post.save()
            tags = await Tag.objects.filter(name__in=tag_names)
            unknown = sorted(set(tag_names) - {tag.name for tag in tags})
            if unknown:
                # Raised after the post was saved: the block rolls it back.
                raise ValidationError({"tags": [f"Unknown tag: {name}." for name in unknown]})
            await post.tags.set(tags)
    except ValidationError as exc:
        return JsonResponse({"errors": exc.message_dict}, status=400)
    post = await Post.objects.prefetch_related("tags").annotate(
        comment_count=Count("comments")
    ).get(pk=post.pk)
    return JsonResponse(post_json(post), status=201)


@csrf_exempt
async def api_publish(request):
    """POST ``{"ids": [...]}``: publish those drafts at once (``bulk_update``)."""
    if request.method != "POST":
        return JsonResponse({"errors": {"__all__": ["Use POST."]}}, status=405)
    try:
        ids = json.loads(request.body)["ids"]
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"errors": {"ids": ["A list of post ids is required."]}}, status=400)
    now = timezone.now()
    async with dualcall.atomic():
        drafts = await Post.objects.filter(pk__in=ids, published=False)
        for post in drafts:
            post.published, post.published_at = True, now
        await Post.objects.bulk_update(drafts, ["published", "published_at"])
    return JsonResponse({"published": [post.slug for post in drafts]})


async def api_stats(request):
    """Several independent queries, started together with ``asyncio.gather``."""
    posts, published, comments, tags, dates, top_tags = await asyncio.gather(
        Post.objects.count(),
        Post.objects.filter(published=True).count(),
        Comment.objects.count(),
        Tag.objects.count(),
        Post.objects.filter(published=True).aggregate(
            first=Min("published_at"), last=Max("published_at")
        ),
        Tag.objects.annotate(posts_count=Count("posts")).order_by("-posts_count", "name")[:3],
    )
    return JsonResponse(
        {
            "posts": posts,
            "published": published,
            "drafts": posts - published,
            "comments": comments,
            "tags": tags,
            "first_published": dates["first"],
            "last_published": dates["last"],
            "top_tags": {tag.name: tag.posts_count for tag in top_tags},
        }
    )
