"""The one piece of private code that every longtail package shares.

* :mod:`longtail._core.checks` - argument checks (wrong type -> ``TypeError``, wrong value
  -> ``ValueError``) and the one CSR check that runs before any kernel sees label arrays;
* :mod:`longtail._core.rng` - the seed policy: named stream ids, ``derive_seed`` and the
  xoshiro256** generator that every Numba kernel draws from;
* :mod:`longtail._core.sampler` - epochs, seeds, sharding across ranks and mid-epoch
  resume, shared by every sampler;
* :mod:`longtail._core.lazy` - the lazy export maps of the package ``__init__`` modules.

Nothing here imports another longtail package, so every package may import it.
"""
