"""Inference and evaluation: a song in, vocals and accompaniment out, scored with museval.

``separate`` (the pipeline and its :class:`~vocalmine.separation.separate.Separator`),
``settings`` (post-processing and chunk options, without numpy), ``chunking`` (blocks and
patches with overlap-add), ``masks`` (ratio masks and their full-band mapping), ``postprocess``
(binarisation, vocal gate, Wiener filter), ``streams`` (streamed decode and encode),
``eval_datasets``, ``oracles`` and ``scoring`` (datasets, MIX/IRM baselines, BSSEval v4) and
``report`` (tables, plots).
"""
