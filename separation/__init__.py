"""Inference and evaluation: a song in, vocals and accompaniment out, scored with museval.

``separate`` (the pipeline and the :class:`~separation.separate.Separator`), ``chunking``
(blocks and patches with overlap-add), ``masks`` (ratio masks and their full-band mapping),
``postprocess`` (binarisation, vocal gate, Wiener filter), ``streams`` (streamed decode and
encode), ``evaluate`` (datasets, oracles, BSSEval v4 scoring) and ``report`` (tables, plots).
"""
