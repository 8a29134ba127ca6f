"""Run mypy on the coopfed package as it is installed, naming the files a developer opens.

The package's modules live in several folders (`[tool.setuptools.package-dir]`), which the editable
install serves through an import hook that static tools cannot see. So mypy reads a tree of links
laid out as the package, one link per folder (a new module is seen at once, without a reinstall),
and its report names the real files again. Arguments are passed on to mypy; its options are in
`[tool.mypy]`.
"""

import os
import re
import shutil
import sys
import tomllib
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent
TREE = Path("build/typecheck")


def package_dirs() -> dict[str, Path]:
    """Each mapped package's folder, from pyproject.toml."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {package: Path(folder) for package, folder in config["tool"]["setuptools"]["package-dir"].items()}


def link_tree(dirs: dict[str, Path]) -> dict[str, str]:
    """Lay out TREE as the package; return each link's path mapped to the real path it stands for."""
    shutil.rmtree(TREE, ignore_errors=True)
    links: dict[Path, Path] = {}
    for package, folder in sorted(dirs.items()):  # a package before the packages inside it
        place = TREE.joinpath(*package.split("."))
        if any(other.startswith(package + ".") for other in dirs):
            place.mkdir(parents=True)
            for entry in folder.iterdir():
                if f"{package}.{entry.name}" not in dirs and entry.name != "__pycache__":
                    links[place / entry.name] = entry
        else:
            links[place] = folder
    for link, target in links.items():
        link.symlink_to(os.path.relpath(target, link.parent))
    return {str(link): str(target) for link, target in links.items()}


def real_paths(report: str, links: dict[str, str]) -> str:
    """The report with every path inside the link tree replaced by the real file's path."""
    longest_first = sorted(links, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(link) + r"(?=[/:])" for link in longest_first))
    return pattern.sub(lambda match: links[match.group(0)], report)


def main() -> int:
    os.chdir(ROOT)
    dirs = package_dirs()
    links = link_tree(dirs)
    tops = sorted({str(TREE / package.split(".")[0]) for package in dirs})
    stdout, stderr, status = api.run([*sys.argv[1:], *tops])
    sys.stdout.write(real_paths(stdout, links))
    sys.stderr.write(real_paths(stderr, links))
    return status


if __name__ == "__main__":
    sys.exit(main())
