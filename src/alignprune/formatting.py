"""Tables as text: the same cells in Markdown and in LaTeX (booktabs).

A table arrives as a frame of numbers. Columns ``X_mean``/``X_std`` named in
``paired`` print as one cell 'mean ± std'; a boolean column ``best_X`` marks
the cells of column X (or of the pair X) to print in bold, and is not shown.
"""

from __future__ import annotations

import pandas as pd

FLAVOURS = {
    # pm: the '±' sign; bold: how a best cell is marked
    "md": {"pm": " ± ", "bold": "**{}**"},
    "tex": {"pm": r" $\pm$ ", "bold": r"\textbf{{{}}}"},
}


def _escape(text: str, flavour: str) -> str:
    """Method names and column headers hold underscores, which LaTeX reads as subscripts."""
    return text.replace("_", r"\_") if flavour == "tex" else text


def cells(table: pd.DataFrame, flavour: str, paired: list[str] | None = None, digits: int = 1) -> pd.DataFrame:
    """Every cell as the string printed: numbers to ``digits`` decimals, best cells in bold."""
    style = FLAVOURS[flavour]
    paired = paired or []
    shown = pd.DataFrame(index=table.index)
    hidden = {f"{name}_std" for name in paired} | {c for c in table.columns if c.startswith("best_")}
    for column in table.columns:
        if column in hidden:
            continue
        name = column.removesuffix("_mean") if column.removesuffix("_mean") in paired else column
        if name in paired:
            mean, std = table[f"{name}_mean"], table[f"{name}_std"]
            text = [
                "" if pd.isna(m) else f"{m:.{digits}f}" if pd.isna(s) else f"{m:.{digits}f}{style['pm']}{s:.{digits}f}"
                for m, s in zip(mean, std)
            ]
        elif column == "sparsity_target":
            name, text = "sparsity", table[column].map("{:.2f}".format).tolist()
        elif pd.api.types.is_bool_dtype(table[column]):
            text = table[column].map({True: "yes", False: ""}).tolist()
        elif pd.api.types.is_float_dtype(table[column]):
            text = ["" if pd.isna(v) else f"{v:.{digits}f}" for v in table[column]]
        else:
            text = [_escape(str(v), flavour) for v in table[column]]
        best = table.get(f"best_{name}")
        if best is not None:
            text = [style["bold"].format(t) if b else t for t, b in zip(text, best.fillna(False))]
        shown[_escape(name, flavour)] = text
    return shown


def markdown(table: pd.DataFrame, paired: list[str] | None = None, digits: int = 1) -> str:
    shown = cells(table, "md", paired, digits)
    align = ["left"] + ["right"] * (len(shown.columns) - 1)
    # numbers are already formatted: keep "0.50" from being printed as "0.5"
    return shown.to_markdown(index=False, disable_numparse=True, colalign=align) + "\n"


def latex(table: pd.DataFrame, paired: list[str] | None = None, digits: int = 1) -> str:
    """A booktabs tabular (\\toprule, \\midrule, \\bottomrule); needs \\usepackage{booktabs}."""
    shown = cells(table, "tex", paired, digits)
    return shown.style.hide(axis="index").to_latex(
        hrules=True, column_format="l" + "r" * (len(shown.columns) - 1)
    )
