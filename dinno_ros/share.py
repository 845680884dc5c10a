"""Where the package's data (config/, maps/, launch/, rviz/) lives, with or without a ROS install.

Order: a colcon/ament install (``ament_index_python``), then the source checkout this module sits in
(pip-only, editable installs). ``python -m dinno_ros.share --install-index PREFIX`` registers the checkout
in a prefix's ament index so ``get_package_share_directory('dinno_ros')`` works there too.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

PACKAGE = "dinno_ros"
DATA_DIRS = ("config", "maps", "launch", "rviz")
SOURCE_ROOT = Path(__file__).resolve().parent.parent

logger = logging.getLogger(__name__)


def _is_share(path: Path) -> bool:
    return (path / "config").is_dir() and (path / "package.xml").is_file()


def share_dir() -> Path:
    """The directory holding config/, maps/, launch/ and rviz/ for this installation."""
    if _is_share(SOURCE_ROOT):
        return SOURCE_ROOT
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except (ImportError, LookupError) as exc:  # PackageNotFoundError is a LookupError
        raise FileNotFoundError(f"cannot find the share directory of {PACKAGE}: {exc}") from exc


def resolve_config(name: str | os.PathLike) -> Path:
    """A config path as given, or a bare name (``lidar.yaml``, ``lidar``) under share/config."""
    path = Path(name)
    if path.is_file():
        return path.resolve()
    for candidate in (path, path.with_suffix(".yaml")):
        shared = share_dir() / "config" / candidate
        if shared.is_file():
            return shared
    raise FileNotFoundError(f"config '{name}' is neither a file nor a name under {share_dir() / 'config'}")


def install_index(prefix: Path) -> None:
    """Register the source checkout as ``prefix/share/dinno_ros`` in the prefix's ament index."""
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    share = prefix / "share" / PACKAGE
    share.mkdir(parents=True, exist_ok=True)
    for name in (*DATA_DIRS, "package.xml"):
        link = share / name
        if link.is_symlink() or link.exists():
            if link.resolve() == (SOURCE_ROOT / name).resolve():
                continue
            link.unlink()
        link.symlink_to(SOURCE_ROOT / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install-index", type=Path, metavar="PREFIX", help="register the checkout in PREFIX")
    args = parser.parse_args(argv)
    if args.install_index:
        install_index(args.install_index)
    else:
        print(share_dir())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
