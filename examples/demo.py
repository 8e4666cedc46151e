"""``make demo`` and ``make run``: the example site on a real ASGI server.

``python examples/demo.py``: migrate a fresh SQLite database in a temporary
directory, seed it with the async ``seed_demo`` command, start uvicorn on
127.0.0.1 (a free port), make real HTTP requests to every view, print what
each returned and which dualcall feature it exercised, stop the server
(always) and exit 0 only if every request gave the expected result.

``python examples/demo.py --run``: the same site on ``examples/db.sqlite3``,
left running (``PORT``, default 8000) until Ctrl-C.

The end-to-end test (``tests/test_examples_e2e.py``) imports this module and
runs :func:`prepare`, :func:`serve` and :func:`run_checks` against SQLite and
PostgreSQL.
"""

from __future__ import annotations

import argparse
import contextlib
import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
ERROR_NAME = "UnprefetchedRelatedModelAccessError"


# -- the site: migrate, seed, serve ----------------------------------------------


def manage(env: dict[str, str], *args: str) -> str:
    """Run ``manage.py *args`` with *env*; return its stdout, raise with its output on failure."""
    proc = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=EXAMPLES,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"manage.py {' '.join(args)} failed (exit {proc.returncode}):\n"
            f"{proc.stdout}{proc.stderr}"
        )
    return proc.stdout


def prepare(env: dict[str, str]) -> str:
    """Migrate the database *env* points at and seed it; return the seed command's output."""
    manage(env, "migrate", "--no-input", "-v0")
    return manage(env, "seed_demo").strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def uvicorn_command(port: int, log_level: str) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "demosite.asgi:application",
        "--app-dir", str(EXAMPLES),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--lifespan", "off",  # Django does not implement ASGI lifespan
        "--log-level", log_level,
    ]  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server: SIGTERM, then SIGKILL if it has not exited within 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Server:
    """A running uvicorn: its base URL, and what it logged."""

    url: str
    log_file: object = None

    def log(self) -> str:
        self.log_file.seek(0)  # type: ignore[attr-defined]
        return self.log_file.read().decode(errors="replace")  # type: ignore[attr-defined]


@contextlib.contextmanager
def serve(env: dict[str, str], port: int | None = None, timeout: float = 20) -> Iterator[Server]:
    """Start uvicorn on 127.0.0.1 with *env*; yield it once it answers; always stop it."""
    port = port or free_port()
    with tempfile.TemporaryFile() as log:
        server = Server(f"http://127.0.0.1:{port}", log)
        proc = subprocess.Popen(
            uvicorn_command(port, "warning"), cwd=EXAMPLES, env=env, stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"uvicorn exited with {proc.returncode}:\n{server.log()}")
                try:
                    with urllib.request.urlopen(server.url + "/", timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"uvicorn did not answer on {server.url} within {timeout} s:\n"
                            f"{server.log()}"
                        ) from None
                    time.sleep(0.1)
            yield server
        finally:
            stop(proc)


# -- an HTTP client: urllib, cookies, no automatic redirects ----------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> object:
        return json.loads(self.text)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class Client:
    """A browser-like client: keeps the session and CSRF cookies, shows redirects as they are."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _NoRedirect()
        )

    def request(
        self, method: str, path: str, data: bytes | None = None, content_type: str = ""
    ) -> Response:
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        if content_type:
            req.add_header("Content-Type", content_type)
        try:
            with self.opener.open(req, timeout=10) as resp:
                return Response(resp.status, dict(resp.headers), resp.read().decode())
        except urllib.error.HTTPError as exc:
            with exc:
                return Response(exc.code, dict(exc.headers), exc.read().decode())

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post_form(self, path: str, fields: dict[str, str]) -> Response:
        body = urllib.parse.urlencode(fields).encode()
        return self.request("POST", path, body, "application/x-www-form-urlencoded")

    def post_json(self, path: str, payload: object) -> Response:
        return self.request("POST", path, json.dumps(payload).encode(), "application/json")

    def login(self, username: str, password: str, next_url: str) -> Response:
        """Log in through the login page's form, CSRF token included."""
        token = csrf_token(self.get("/accounts/login/"))
        fields = {"username": username, "password": password, "next": next_url}
        return self.post_form("/accounts/login/", {**fields, "csrfmiddlewaretoken": token})


def csrf_token(page: Response) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if not match:
        raise AssertionError(f"no CSRF token in the page (status {page.status})")
    return match.group(1)


# -- the checks ---------------------------------------------------------------------


@dataclass
class Result:
    endpoint: str
    returned: str
    feature: str
    ok: bool


class Check(Exception):
    """A response that is not what the check expected."""


def expect(condition: object, what: str) -> None:
    if not condition:
        raise Check(what)


def expect_status(resp: Response, status: int) -> None:
    expect(resp.status == status, f"expected {status}, got {resp.status}: {resp.text[:300]!r}")


@dataclass
class Scenario:
    """The requests of the demo, in order; later steps use what earlier ones found."""

    base_url: str
    results: list[Result] = field(default_factory=list)
    error_message: str = ""

    def step(self, endpoint: str, feature: str, run: Callable[[], str]) -> None:
        try:
            returned, ok = run(), True
        except Exception as exc:  # a failed step is reported, and the next ones still run
            returned, ok = f"FAILED: {type(exc).__name__}: {exc}", False
        self.results.append(Result(endpoint, returned, feature, ok))

    def run(self) -> list[Result]:
        web = Client(self.base_url)
        s = self.step
        s("GET /", "the site answers over ASGI (uvicorn)", lambda: self.home(web))
        s("GET /polls/api/questions/", "await qs.annotate(...).values(...) -> list of dicts",
          lambda: self.api_questions(web))
        s("GET /polls/", "await Question.objects.order_by(...)[:10] -> list",
          lambda: self.polls_index(web))
        s("GET /polls/{id}/", "await get_object_or_404(qs.prefetch_related('choice_set'))",
          lambda: self.polls_detail(web))
        s("GET /polls/999999/", "dualcall.shortcuts.get_object_or_404 raises Http404",
          lambda: self.polls_missing(web))
        s("POST /polls/{id}/vote/", "F() update in async with dualcall.atomic(); "
          "await choice.a.question", lambda: self.polls_vote(web))
        s("GET /polls/{id}/results/", "await Question.objects.get(); "
          "await question.choice_set.all()", lambda: self.polls_results(web))
        s("GET /polls/api/choices/{id}/", "await choice.a.question, then choice.question "
          "is cached", lambda: self.api_choice(web))
        s("GET /polls/broken/{id}/", f"choice.question unfetched in async code -> {ERROR_NAME}",
          lambda: self.broken(web))
        s("GET /blog/", "async for over a QuerySet with prefetch_related + annotate",
          lambda: self.blog_list(web))
        s("GET /blog/{slug}/", "await Post.objects.get(); await post.comments.all(); "
          "await post.a.tags", lambda: self.blog_detail(web))
        s("GET /blog/api/stats/", "asyncio.gather(count(), count(), aggregate(), await-able qs)",
          lambda: self.blog_stats(web))
        s("POST /blog/api/posts/ (no title)", "await post.full_clean() -> 400, nothing written",
          lambda: self.blog_invalid(web))
        s("POST /blog/api/posts/ (unknown tag)", "error after await post.save() inside "
          "dualcall.atomic -> rolled back", lambda: self.blog_rollback(web))
        s("POST /blog/api/posts/", "await post.save() (runs Post.save override); "
          "await post.tags.set()", lambda: self.blog_create(web))
        s("POST /blog/api/publish/", "bulk publish: await Post.objects.bulk_update() in atomic",
          lambda: self.blog_publish(web))
        anonymous, student, teacher = Client(self.base_url), Client(self.base_url), Client(
            self.base_url
        )
        s("GET /school/gradebook/ (anonymous)", "dualcall.decorators.user_passes_test "
          "-> login redirect", lambda: self.gradebook_denied(anonymous, "anonymous"))
        s("POST /accounts/login/ (arnold)", "Django session login, CSRF token from the form",
          lambda: self.login(student, "arnold", "field-trip"))
        s("GET /school/gradebook/ (student)", "async test: await user.a.inschooluser "
          "-> not a teacher", lambda: self.gradebook_denied(student, "arnold"))
        s("GET /school/my-grades/ (student)", "dualcall.decorators.login_required; "
          "await profile.grades.select_related(...)", lambda: self.my_grades(student))
        s("POST /accounts/login/ (frizzle)", "Django session login, CSRF token from the form",
          lambda: self.login(teacher, "frizzle", "magic-school-bus"))
        s("GET /school/gradebook/ (teacher)", "async test passes; select_related grades",
          lambda: self.gradebook(teacher))
        return self.results

    # polls

    def home(self, web: Client) -> str:
        resp = web.get("/")
        expect_status(resp, 200)
        expect("dualcall examples" in resp.text, "no title on the home page")
        return "200, the HTML home page"

    def api_questions(self, web: Client) -> str:
        resp = web.get("/polls/api/questions/")
        expect_status(resp, 200)
        questions = resp.json()["questions"]  # type: ignore[index]
        expect(len(questions) == 3, f"expected 3 questions, got {questions}")
        self.question = questions[0]
        expect(self.question["choices"] == 3, f"expected 3 choices, got {self.question}")
        return f"200, JSON: {len(questions)} questions, {self.question['choices']} choices each"

    def polls_index(self, web: Client) -> str:
        resp = web.get("/polls/")
        expect_status(resp, 200)
        links = re.findall(r'<a href="/polls/(\d+)/">', resp.text)
        expect(len(links) == 3, f"expected 3 question links, got {links}")
        return f"200, HTML list of {len(links)} questions"

    def polls_detail(self, web: Client) -> str:
        qid = self.question["id"]
        resp = web.get(f"/polls/{qid}/")
        expect_status(resp, 200)
        self.choice_ids = re.findall(r'name="choice" id="choice\d+" value="(\d+)"', resp.text)
        expect(len(self.choice_ids) == 3, f"expected 3 choices, got {self.choice_ids}")
        self.vote_token = csrf_token(resp)
        return f"200, HTML form with {len(self.choice_ids)} choices (prefetched)"

    def polls_missing(self, web: Client) -> str:
        resp = web.get("/polls/999999/")
        expect_status(resp, 404)
        return "404"

    def polls_vote(self, web: Client) -> str:
        qid = self.question["id"]
        fields = {"choice": self.choice_ids[0], "csrfmiddlewaretoken": self.vote_token}
        resp = web.post_form(f"/polls/{qid}/vote/", fields)
        expect_status(resp, 302)
        expect(resp.headers.get("Location") == f"/polls/{qid}/results/", f"{resp.headers}")
        return f"302 -> {resp.headers['Location']}"

    def polls_results(self, web: Client) -> str:
        qid = self.question["id"]
        resp = web.get(f"/polls/{qid}/results/")
        expect_status(resp, 200)
        votes = re.findall(r"-- (\d+) votes?", resp.text)
        expect(votes == ["1", "0", "0"], f"expected votes 1, 0, 0, got {votes}")
        return "200, HTML results: 1, 0, 0 votes"

    def api_choice(self, web: Client) -> str:
        cid = self.choice_ids[0]
        resp = web.get(f"/polls/api/choices/{cid}/")
        expect_status(resp, 200)
        data = resp.json()
        expect(data["votes"] == 1 and data["question"] == self.question["question_text"],  # type: ignore[index]
               f"unexpected {data}")
        return f"200, JSON: {data['choice_text']!r}, {data['votes']} vote, question loaded"  # type: ignore[index]

    def broken(self, web: Client) -> str:
        resp = web.get(f"/polls/broken/{self.choice_ids[0]}/")
        expect_status(resp, 500)
        expect(resp.text.startswith(ERROR_NAME) and "Choice.question" in resp.text,
               f"unexpected body {resp.text!r}")
        self.error_message = resp.text.strip()
        return f"500, text/plain: {ERROR_NAME} (message below)"

    # blog

    def blog_list(self, web: Client) -> str:
        resp = web.get("/blog/")
        expect_status(resp, 200)
        self.slugs = re.findall(r'<a href="/blog/([\w-]+)/">', resp.text)
        expect(len(self.slugs) == 3, f"expected 3 published posts, got {self.slugs}")
        expect("#async" in resp.text, "no tags on the list page")
        return f"200, HTML list of {len(self.slugs)} published posts with tags and comment counts"

    def blog_detail(self, web: Client) -> str:
        resp = web.get(f"/blog/{self.slugs[0]}/")
        expect_status(resp, 200)
        expect("2 comments" in resp.text, "expected '2 comments' in the page")
        expect("#async" in resp.text, "expected the tag '#async' in the page")
        return f"200, HTML post {self.slugs[0]!r}: 2 comments, 2 tags"

    def stats(self, web: Client) -> dict[str, object]:
        resp = web.get("/blog/api/stats/")
        expect_status(resp, 200)
        return resp.json()  # type: ignore[return-value]

    def blog_stats(self, web: Client) -> str:
        data = self.stats(web)
        expect((data["posts"], data["published"], data["comments"]) == (5, 3, 3), f"{data}")
        return (f"200, JSON: {data['posts']} posts, {data['published']} published, "
                f"{data['comments']} comments, top tags {data['top_tags']}")

    def blog_invalid(self, web: Client) -> str:
        resp = web.post_json("/blog/api/posts/", {"title": "", "body": "text"})
        expect_status(resp, 400)
        errors = resp.json()["errors"]  # type: ignore[index]
        expect("title" in errors, f"no title error in {errors}")
        expect(self.stats(web)["posts"] == 5, "a post was written")
        return f"400, JSON errors {errors}; still 5 posts"

    def blog_rollback(self, web: Client) -> str:
        payload = {"title": "Rolled back", "body": "text", "tags": ["async", "nope"]}
        resp = web.post_json("/blog/api/posts/", payload)
        expect_status(resp, 400)
        errors = resp.json()["errors"]  # type: ignore[index]
        expect(errors == {"tags": ["Unknown tag: nope."]}, f"unexpected {errors}")
        expect(self.stats(web)["posts"] == 5, "the post was not rolled back")
        return f"400, JSON errors {errors}; still 5 posts"

    def blog_create(self, web: Client) -> str:
        payload = {"title": "Hello from the demo", "body": "Written over HTTP.",
                   "tags": ["async", "django"], "published": True}
        resp = web.post_json("/blog/api/posts/", payload)
        expect_status(resp, 201)
        data = resp.json()
        expect(data["slug"] == "hello-from-the-demo" and data["tags"] == ["async", "django"],  # type: ignore[index]
               f"unexpected {data}")
        again = web.post_json("/blog/api/posts/", payload)
        expect_status(again, 400)
        expect("slug" in again.json()["errors"], again.text)  # type: ignore[index]
        return f"201, JSON slug {data['slug']!r} tags {data['tags']}; same title again: 400"  # type: ignore[index]

    def blog_publish(self, web: Client) -> str:
        posts = web.get("/blog/api/posts/").json()["posts"]  # type: ignore[index]
        drafts = [post["id"] for post in posts if not post["published"]]
        expect(len(drafts) == 2, f"expected 2 drafts, got {posts}")
        resp = web.post_json("/blog/api/publish/", {"ids": drafts})
        expect_status(resp, 200)
        published = resp.json()["published"]  # type: ignore[index]
        expect(len(published) == 2, f"unexpected {published}")
        stats = self.stats(web)
        expect(stats["published"] == 6 and stats["drafts"] == 0, f"{stats}")
        return f"200, JSON published {published}; now 6 published, 0 drafts"

    # school

    def gradebook_denied(self, web: Client, who: str) -> str:
        resp = web.get("/school/gradebook/")
        expect_status(resp, 302)
        location = resp.headers.get("Location", "")
        expect(location == "/accounts/login/?next=/school/gradebook/", location)
        return f"302 -> {location}"

    def login(self, web: Client, username: str, password: str) -> str:
        resp = web.login(username, password, "/school/gradebook/")
        expect_status(resp, 302)
        return f"302 -> {resp.headers.get('Location')}, session cookie set"

    def my_grades(self, web: Client) -> str:
        resp = web.get("/school/my-grades/")
        expect_status(resp, 200)
        data = resp.json()
        expect(data["type"] == "student" and len(data["grades"]) == 2, f"{data}")  # type: ignore[index]
        return f"200, JSON {data['grades']}"  # type: ignore[index]

    def gradebook(self, web: Client) -> str:
        resp = web.get("/school/gradebook/")
        expect_status(resp, 200)
        rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>(\d+)</td></tr>", resp.text)
        expect(len(rows) == 4, f"expected 4 grades, got {rows}")
        return f"200, HTML gradebook with {len(rows)} grades"


def run_checks(base_url: str) -> Scenario:
    scenario = Scenario(base_url)
    scenario.run()
    return scenario


def report(results: list[Result], error_message: str) -> str:
    lines = []
    for result in results:
        lines.append(f"[{'ok' if result.ok else 'FAIL'}] {result.endpoint} -> {result.returned}")
        lines.append(f"       dualcall: {result.feature}")
    if error_message:
        lines.append("")
        lines.append("The deliberately wrong view (GET /polls/broken/{id}/) answered:")
        lines.extend(textwrap.wrap(error_message, 96, initial_indent="  ",
                                   subsequent_indent="  "))
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------


def site_env(sqlite_path: Path, debug: bool = False) -> dict[str, str]:
    env = {**os.environ, "DUALCALL_EXAMPLES_DB": "sqlite",
           "DUALCALL_EXAMPLES_SQLITE": str(sqlite_path)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if debug:
        env["DUALCALL_EXAMPLES_DEBUG"] = "1"
    return env


def demo() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dualcall-demo-") as tmp:
        env = site_env(Path(tmp) / "demo.sqlite3")
        print(f"dualcall demo: SQLite database in {tmp}")
        try:
            seeded = prepare(env)
            print(f"$ manage.py migrate; manage.py seed_demo   (an async command)\n  {seeded}")
            with serve(env) as server:
                print(f"$ uvicorn demosite.asgi:application   -> {server.url}\n")
                scenario = run_checks(server.url)
                log = server.log()
            print(report(scenario.results, scenario.error_message))
            print("\n$ manage.py demo_stats   (an async command: asyncio.gather, async for)")
            print(textwrap.indent(manage(env, "demo_stats").rstrip(), "  "))
        except RuntimeError as exc:  # migrate, seed or the server failed
            print(f"\n{exc}\ndualcall demo: FAILED")
            return 1
    failed = [result for result in scenario.results if not result.ok]
    total = len(scenario.results)
    print(f"\nserver stopped; {total - len(failed)}/{total} requests as expected "
          f"in {time.monotonic() - started:.1f} s")
    if failed:
        print(f"\nserver log:\n{log}\ndualcall demo: FAILED")
        return 1
    return 0


def run_forever() -> int:
    env = site_env(EXAMPLES / "db.sqlite3", debug=True)
    print(f"dualcall examples: SQLite database {EXAMPLES / 'db.sqlite3'}")
    print(prepare(env))
    port = int(os.environ.get("PORT", "8000"))
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            port = free_port()
    print(f"\n  Open http://127.0.0.1:{port}/   (Ctrl-C stops the server)\n", flush=True)
    proc = subprocess.Popen(uvicorn_command(port, "info"), cwd=EXAMPLES, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="store_true", help="serve the site until Ctrl-C")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the server is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    return run_forever() if args.run else demo()


if __name__ == "__main__":
    sys.exit(main())
