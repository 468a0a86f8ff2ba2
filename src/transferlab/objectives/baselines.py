"""The classical baselines an objective offers transferlab-baseline: TF-IDF features and a linear model, its
regularisation picked on validation (never on test), scored with the objective's own metric names.

Features: word 1-2-grams with sublinear tf, fitted on train. A pair (data.text_pair_column) gets one vectorizer per
text, side by side, so a linear model sees which words stand in which text."""

import time

C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)  # logistic regression's inverse regularisation strengths
ALPHA_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)  # ridge's regularisation strengths


def tfidf(splits: dict) -> dict:
    """{split: sparse features}; the inputs are the splits' `text` (and `text_pair` where read) columns."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer

    fields = [f for f in ("text", "text_pair") if f in splits["train"].column_names]
    out = {split: [] for split in splits}
    for field in fields:
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True)
        texts = {split: [str(t) for t in ds[field][:]] for split, ds in splits.items()}
        out["train"].append(vectorizer.fit_transform(texts["train"]))
        for split in splits:
            if split != "train":
                out[split].append(vectorizer.transform(texts[split]))
    return {split: hstack(parts).tocsr() for split, parts in out.items()}


def pick(fit, grid: tuple, score, features: dict, targets: dict) -> tuple:
    """(the grid value, the fitted model) whose validation score is highest."""
    best = None
    for value in grid:
        model = fit(value).fit(features["train"], targets["train"])
        got = score(targets["validation"], model.predict(features["validation"]))
        if best is None or got > best[0]:
            best = (got, value, model)
    return best[1], best[2]


def _params(model) -> dict:
    n = int(model.coef_.size + model.intercept_.size)
    return {"params/trainable": n, "params/total": n}


def logistic(splits: dict, targets: dict, seed: int) -> dict:
    """One label per text: logistic regression, C picked on validation accuracy; acc and macro-F1."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    start = time.perf_counter()
    features = tfidf(splits)

    def fit(c):
        return LogisticRegression(C=c, max_iter=2000, random_state=seed)

    c, model = pick(fit, C_GRID, accuracy_score, features, targets)
    metrics = {"time/fit_s": round(time.perf_counter() - start, 3), "baseline/C": c, **_params(model)}
    for split, stage in (("validation", "val"), ("test", "test")):
        predicted = model.predict(features[split])
        metrics[f"{stage}/acc"] = accuracy_score(targets[split], predicted)
        metrics[f"{stage}/f1_macro"] = f1_score(targets[split], predicted, average="macro")
    return metrics


def ridge(splits: dict, targets: dict, seed: int) -> dict:
    """A number per text: ridge regression, alpha picked on validation RMSE; mse, rmse, Pearson and Spearman."""
    import numpy as np
    from scipy.stats import pearsonr, spearmanr
    from sklearn.linear_model import Ridge

    start = time.perf_counter()
    features = tfidf(splits)

    def negative_rmse(y, predicted):
        return -float(np.sqrt(np.mean((np.asarray(y) - predicted) ** 2)))

    def fit(alpha):
        return Ridge(alpha=alpha, random_state=seed)

    alpha, model = pick(fit, ALPHA_GRID, negative_rmse, features, targets)
    metrics = {"time/fit_s": round(time.perf_counter() - start, 3), "baseline/alpha": alpha, **_params(model)}
    for split, stage in (("validation", "val"), ("test", "test")):
        y, predicted = np.asarray(targets[split], dtype=float), model.predict(features[split])
        mse = float(np.mean((y - predicted) ** 2))
        metrics.update({f"{stage}/mse": mse, f"{stage}/rmse": mse**0.5})
        metrics[f"{stage}/pearson"] = float(pearsonr(y, predicted)[0])
        metrics[f"{stage}/spearman"] = float(spearmanr(y, predicted)[0])
    return metrics
