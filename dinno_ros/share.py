"""
Where the package's data (config/, maps/, launch/, rviz/) lives, with or without a ROS install.

Order: a colcon/ament install (``ament_index_python``), then the source checkout this module sits
in (pip-only, editable installs). ``python -m dinno_ros.share --install-index PREFIX`` registers
the checkout in a prefix's ament index so ``get_package_share_directory('dinno_ros')`` works there
too.
"""

from __future__ import annotations

import argparse
from importlib import metadata
import logging
import os
from pathlib import Path
import shutil
import sys
import sysconfig

PACKAGE = 'dinno_ros'
DATA_DIRS = ('config', 'maps', 'launch', 'rviz')
SOURCE_ROOT = Path(__file__).resolve().parent.parent

logger = logging.getLogger(__name__)


def _is_share(path: Path) -> bool:
    return (path / 'config').is_dir() and (path / 'package.xml').is_file()


def share_dir() -> Path:
    """Return the directory holding config/, maps/, launch/ and rviz/ for this installation."""
    if _is_share(SOURCE_ROOT):
        return SOURCE_ROOT
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except (ImportError, LookupError) as exc:  # PackageNotFoundError is a LookupError
        raise FileNotFoundError(f'cannot find the share directory of {PACKAGE}: {exc}') from exc


def resolve_config(name: str | os.PathLike) -> Path:
    """
    Return a config path as given, or a bare name under share/config.

    A bare name is ``lidar.yaml`` or ``lidar``.
    """
    path = Path(name)
    if path.is_file():
        return path.resolve()
    for candidate in (path, path.with_suffix('.yaml')):
        shared = share_dir() / 'config' / candidate
        if shared.is_file():
            return shared
    raise FileNotFoundError(
        f"config '{name}' is neither a file nor a name under {share_dir() / 'config'}"
    )


def install_index(prefix: Path) -> None:
    """
    Register the checkout in ``prefix`` as a colcon install would lay it out.

    ``share/dinno_ros`` gets real folders whose files link to the checkout (ros2launch's
    ``os.walk`` does not follow linked folders), and ``lib/dinno_ros`` gets one script per console
    entry point (where ``ros2 run`` and launch ``Node`` actions look for executables).
    """
    marker = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    share = prefix / 'share' / PACKAGE
    _link_file(share / 'package.xml', SOURCE_ROOT / 'package.xml')
    for name in DATA_DIRS:
        _mirror(SOURCE_ROOT / name, share / name)
    _write_executables(prefix / 'lib' / PACKAGE)
    if Path(sys.prefix).resolve() == prefix.resolve():
        _write_prefix_hook()


PREFIX_HOOK = 'dinno_ros_ament_prefix.pth'


def _write_prefix_hook() -> None:
    """
    Make this venv a ROS prefix for every process it runs (``.venv/bin/ros2 launch`` unsourced).

    A ``.pth`` line runs at interpreter start: it adds ``sys.prefix`` to ``AMENT_PREFIX_PATH``
    (after a sourced ROS install's entries, if any), as ``source install/setup.bash`` would.
    """
    site = Path(sysconfig.get_paths()['purelib'])
    code = (
        'import os, sys; '
        "p = [e for e in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if e]; "
        "sys.prefix in p or os.environ.__setitem__('AMENT_PREFIX_PATH', "
        'os.pathsep.join(p + [sys.prefix]))\n'
    )
    hook = site / PREFIX_HOOK
    if not hook.is_file() or hook.read_text() != code:
        hook.write_text(code)


def _link_file(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and link.resolve() == target.resolve():
        return
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    link.symlink_to(target)


def _mirror(source: Path, dest: Path) -> None:
    """``dest`` as a tree of real folders with a link per file of ``source``; stale entries go."""
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    wanted = {p.relative_to(source) for p in source.rglob('*') if p.is_file()}
    wanted = {p for p in wanted if '__pycache__' not in p.parts}
    for rel in sorted(wanted):
        _link_file(dest / rel, source / rel)
    if dest.is_dir():
        for path in sorted(dest.rglob('*'), reverse=True):
            rel = path.relative_to(dest)
            if path.is_symlink() and rel not in wanted:
                path.unlink()
            elif path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
                path.rmdir()


def _write_executables(lib: Path) -> None:
    """
    Write one small script per ``console_scripts`` entry point of dinno_ros.

    The scripts run with this interpreter.
    """
    lib.mkdir(parents=True, exist_ok=True)
    points = [
        ep
        for ep in metadata.entry_points(group='console_scripts')
        if ep.dist is not None and ep.dist.name.replace('-', '_') == PACKAGE
    ]
    if not points:
        logger.warning(
            'no console scripts of %s found: is it installed (pip install -e .)?', PACKAGE
        )
    for ep in points:
        module, func = ep.value.split(':')
        script = lib / ep.name
        text = (
            f'#!{sys.executable}\n'
            f'"""{PACKAGE} {ep.name} (written by python -m dinno_ros.share --install-index)."""\n'
            f'import sys\n\nfrom {module} import {func}\n\nsys.exit({func}())\n'
        )
        if not script.is_file() or script.read_text() != text:
            script.write_text(text)
        script.chmod(0o755)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument(
        '--install-index', type=Path, metavar='PREFIX', help='register the checkout in PREFIX'
    )
    args = parser.parse_args(argv)
    if args.install_index:
        install_index(args.install_index)
    else:
        print(share_dir())
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
