"""Run Django's ``tests/runtests.py``, optionally with dualcall installed.

    python compat/dualcall_runtests.py DJANGO_TESTS_DIR [--dualcall] [runtests args...]

With ``--dualcall``, ``"dualcall"`` is appended to runtests'
``ALWAYS_INSTALLED_APPS``: runtests hands that list to ``settings.INSTALLED_APPS``
before ``django.setup()``, so dualcall is installed exactly as a user installs
it and its ``AppConfig.ready()`` patches Django.  Nothing else changes: the
module is imported as ``runtests`` (its warning filters and environment apply
as usual) and then its ``if __name__ == "__main__":`` block runs in the
module's own namespace.  Without ``--dualcall`` this is plain runtests.py.
"""

import ast
import os
import sys


def main_block(path):
    """Compile the body of the ``if __name__ == "__main__":`` block of *path*."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in tree.body:
        if (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name)
            and node.test.left.id == "__name__"
            and isinstance(node.test.comparators[0], ast.Constant)
            and node.test.comparators[0].value == "__main__"
        ):
            return compile(ast.Module(body=node.body, type_ignores=[]), path, "exec")
    raise SystemExit(f"{path}: no 'if __name__ == \"__main__\":' block")


def main():
    tests_dir = os.path.abspath(sys.argv[1])
    args = sys.argv[2:]
    with_dualcall = "--dualcall" in args
    if with_dualcall:
        args.remove("--dualcall")
    runtests_path = os.path.join(tests_dir, "runtests.py")
    # As `python runtests.py`: the tests dir first on sys.path; this dir (for
    # the settings and the runner) last, so it shadows nothing.
    sys.path[0] = tests_dir
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))
    sys.argv = [runtests_path, *args]
    code = main_block(runtests_path)

    import runtests

    if with_dualcall:
        runtests.ALWAYS_INSTALLED_APPS.append("dualcall")
    exec(code, vars(runtests))


if __name__ == "__main__":
    main()
