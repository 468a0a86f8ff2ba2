"""Rows with a missing value (null, NaN, a blank string, an empty list), found once per data and column."""


def missing_rows(ds, column: str):
    """Indices of rows whose value is missing: null, NaN, a blank string or an empty list. Scanned once per data
    (its fingerprint) and column, then read from the cache: a run on a prepared corpus reads no line of its text."""
    import numpy as np

    from transferlab.cache import cache_key, cached_file

    def write(path):
        with open(path, "wb") as f:
            np.save(f, _scan_missing(ds, column))

    return np.load(cached_file("missing", cache_key(ds._fingerprint, column, 2), "rows.npy", write))


def _scan_missing(ds, column: str):
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    values = ds.data.column(column)
    kind = values.type
    found, start = [], 0
    for chunk in values.chunks:  # one record batch at a time: a large corpus is never copied whole
        missing = chunk.is_null()
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            missing = pc.or_(missing, pc.fill_null(pc.equal(pc.utf8_trim_whitespace(chunk), ""), True))
        elif pa.types.is_floating(kind):
            missing = pc.or_(missing, pc.fill_null(pc.is_nan(chunk), True))
        elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
            missing = pc.or_(missing, pc.fill_null(pc.equal(pc.list_value_length(chunk), 0), True))
        found.append(np.flatnonzero(missing.to_numpy(zero_copy_only=False)) + start)
        start += len(chunk)
    rows = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    if (
        ds._indices is not None
    ):  # a select() view (e.g. a text file without its blank lines): rows as the view numbers them
        flagged = np.zeros(len(ds.data), dtype=bool)
        flagged[rows] = True
        rows = np.flatnonzero(flagged[ds._indices.column(0).to_numpy()])
    return rows


def complement(rows, n: int):
    """Every row index below n that is not in `rows`, as an array (not a Python list: a corpus has millions)."""
    import numpy as np

    keep = np.ones(n, dtype=bool)
    keep[rows] = False
    return np.flatnonzero(keep)
