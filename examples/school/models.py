from django.conf import settings
from django.db import models


class InSchoolUser(models.Model):
    """Who a user is at school; ``user.inschooluser`` is the reverse one-to-one."""

    TEACHER = "teacher"
    STUDENT = "student"
    TYPES = [(TEACHER, "Teacher"), (STUDENT, "Student")]

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    type = models.CharField(max_length=10, choices=TYPES)

    def __str__(self):
        return f"{self.type} {self.user_id}"


class Course(models.Model):
    name = models.CharField(max_length=100)
    teacher = models.ForeignKey(InSchoolUser, on_delete=models.CASCADE, related_name="courses")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Grade(models.Model):
    student = models.ForeignKey(InSchoolUser, on_delete=models.CASCADE, related_name="grades")
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="grades")
    score = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["course__name", "student__user__username"]
        constraints = [
            models.UniqueConstraint(fields=["student", "course"], name="one_grade_per_course")
        ]

    def __str__(self):
        return f"{self.score}"
