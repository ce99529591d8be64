"""The code digest: which source made a result (alignprune.code_version)."""

import re
import subprocess
import sys

from alignprune import code_version


def test_the_digest_changes_with_any_byte_or_name_of_the_package_source(tmp_path):
    package = tmp_path / "package"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (package / "sub" / "b.py").write_text("y = 2\n")
    (package / "notes.txt").write_text("not code")

    def digest():
        code_version.package_digest.cache_clear()
        return code_version.package_digest(package)

    first = digest()
    assert re.fullmatch(r"[0-9a-f]{12}", first)
    assert digest() == first
    (package / "notes.txt").write_text("other notes")  # not a module: same code
    assert digest() == first
    (package / "a.py").write_text("x = 1  # a comment\n")  # any edit is another source
    changed = digest()
    assert changed != first
    (package / "a.py").write_text("x = 1\n")
    assert digest() == first
    (package / ".#a.py").symlink_to(package / "gone.py")  # an editor's lock file: hidden, dangling
    (package / ".cache").mkdir()
    (package / ".cache" / "d.py").write_text("z = 3\n")
    assert digest() == first
    (package / "bench").mkdir()  # the benchmarks make no result
    (package / "bench" / "startup.py").write_text("rounds = 5\n")
    assert digest() == first
    (package / "sub" / "b.py").rename(package / "sub" / "c.py")  # same bytes, another module
    assert digest() not in (first, changed)
    code_version.package_digest.cache_clear()


def test_the_command_prints_the_digest_of_the_installed_package():
    printed = subprocess.run([sys.executable, "-m", "alignprune.code_version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    assert printed == code_version.package_digest()
    assert code_version.PACKAGE.joinpath("code_version.py").exists()
