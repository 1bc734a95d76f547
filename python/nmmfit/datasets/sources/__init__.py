"""The bundled datasets' sources; importing this package registers them (in this order)."""
from . import neurolib, cubnm, tvb  # noqa: F401  (imported for their registrations)
