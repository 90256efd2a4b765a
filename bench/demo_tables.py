"""Print the README's warm and cold tables (@headline_k) from a lake's warehouse, as markdown.

    .venv/bin/python bench/demo_tables.py [<lake>]     # default: $AUDIOREC_LAKE or ./data_lake

Reads audiorec.metrics (HitRate and NDCG: the seed mean, its 95 % CI — over users, and over seeds too for a cell of
several seeds — and the seed sd), audiorec.comparison_cold and
comparison_cosine (paired tests vs the shuffled twin), so the README's numbers come from one run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

from audiorec_assets.settings import default_lake, load_settings

ORDER = "CASE recommender WHEN 'knn' THEN 0 WHEN 'shallow' THEN 1 WHEN 'bert4rec' THEN 2 WHEN 'als' THEN 3 ELSE 4 END"


def cell_table(con: duckdb.DuckDBPyConnection, split: str, k: int) -> str:
    rows = con.execute(f"""
        WITH m AS (SELECT * FROM audiorec.metrics WHERE split = $split AND k = $k)
        SELECT h.recommender, h.encoder, h.value, h.ci_low, h.ci_high, n.value, n.ci_low, n.ci_high, h.n_seeds,
               h.seed_sd, n.seed_sd, h.n_users
        FROM m h JOIN m n USING (encoder, recommender)
        WHERE h.metric = 'hitrate' AND n.metric = 'ndcg'
        ORDER BY {ORDER.replace('recommender', 'h.recommender')}, h.encoder = 'none', n.value DESC""",
                       {"split": split, "k": k}).fetchall()
    lines = [f"| recommender | encoder | seeds | HitRate@{k} [95 % CI] | NDCG@{k} [95 % CI] | seed sd (HitRate, NDCG) |",
             "|---|---|---|---|---|---|"]
    for rec, enc, hr, hl, hh, nd, nl, nh, seeds, hsd, nsd, _ in rows:
        label = "none (item ids)" if enc == "none" and rec in ("shallow", "bert4rec") else enc
        spread = f"{hsd:.3f}, {nsd:.3f}" if seeds and seeds > 1 else "–"
        lines.append(f"| {rec} | {label} | {seeds or 1} | {hr:.3f} [{hl:.3f}, {hh:.3f}] | {nd:.3f} [{nl:.3f}, {nh:.3f}] "
                     f"| {spread} |")
    users = max((r[-1] for r in rows), default=0)
    return f"{split}: {users} users\n\n" + "\n".join(lines)


def twin_table(con: duckdb.DuckDBPyConnection, table: str) -> str:
    rows = con.execute(f"""SELECT recommender, encoder, twin, ndcg_diff_vs_twin, vs_twin_ci_low, vs_twin_ci_high,
                                  vs_twin_p_holm FROM audiorec.{table} WHERE twin IS NOT NULL
                           ORDER BY {ORDER}, encoder""").fetchall()
    lines = ["| recommender | encoder | vs twin | NDCG diff [95 % CI] | p (Holm) |", "|---|---|---|---|---|"]
    lines += [f"| {r} | {e} | {t} | {d:+.3f} [{lo:+.3f}, {hi:+.3f}] | {p:.4f} |" for r, e, t, d, lo, hi, p in rows]
    return "\n".join(lines)


def main() -> None:
    lake = Path(sys.argv[1]) if len(sys.argv) > 1 else default_lake()
    k = load_settings(lake).headline_k
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        print(cell_table(con, "test", k), end="\n\n")
        print(cell_table(con, "test_cold", k), end="\n\n")
        for table in ("comparison_cosine", "comparison_shallow", "comparison_bert", "comparison_cold"):
            print(f"{table}:\n\n{twin_table(con, table)}\n")


if __name__ == "__main__":
    main()
