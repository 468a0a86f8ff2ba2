"""Build data/manpages_summary/ (summarization) from Debian's manual pages (stdlib only).

Source: the roff source of the pages of six Debian bookworm packages: the Linux man-pages project (manpages,
manpages-dev), GNU coreutils, git (git-man), OpenSSL (libssl-doc) and Perl (perl-doc)::

    cd /tmp && apt-get download manpages manpages-dev coreutils git-man libssl-doc perl-doc
    for f in *.deb; do dpkg -x $f /tmp/mp; done
    python data/build_manpages.py --man-dir /tmp/mp/usr/share/man

One row per page: ``source`` is the start of its DESCRIPTION section as plain text (whole paragraphs until
MAX_WORDS words, the last one cut there) and ``target`` the one-line summary of its NAME line (the text after
``\\-``). Pages that only include another (``.so``) are skipped, as are a page whose summary has a character outside
TARGET_CHARACTERS and one whose source or summary (case-folded) an earlier page had. Split by a hash of the page's
file name (``open.2``): no page is in two splits, and adding a page moves no other. Outputs are byte-identical
across runs.
"""

import argparse
import gzip
import hashlib
import re
import string
from pathlib import Path

from build_wordnet import write_jsonl_gz

MAX_WORDS = 80  # the sources: the page's first paragraph or two (median 164 tokens of pretrain_t5's vocabulary)
MIN_WORDS = 8  # a shorter DESCRIPTION ("See open(2).") has nothing to summarise
HELD_OUT = 10  # percent of the pages in validation, and the same in test (by hash)
# A summary is kept in English prose's characters, the alphabet pretrain_t5's vocabulary (trained on WordNet) can write
# back exactly; this leaves out summaries such as "#include <stdio.h> ..." (and perl's pages in Chinese and Korean).
TARGET_CHARACTERS = set(string.ascii_letters + string.digits + " !\"$%'()+,-./:;=?_`")
OUT_DIR = Path(__file__).resolve().parent / "manpages_summary"

# Named glyphs (\(xx and \[xx]) and strings (\*(xx) the pages use; any other is dropped.
GLYPHS = {
    "em": "\u2014",
    "en": "\u2013",
    "hy": "-",
    "mi": "-",
    "bu": "\u2022",
    "aq": "'",
    "dq": '"',
    "lq": "\u201c",
    "rq": "\u201d",
    "oq": "\u2018",
    "cq": "\u2019",
    "co": "\u00a9",
    "rg": "\u00ae",
    "tm": "\u2122",
    "de": "\u00b0",
    "mu": "\u00d7",
    "di": "\u00f7",
    "+-": "\u00b1",
    "<=": "\u2264",
    ">=": "\u2265",
    "!=": "\u2260",
    "->": "\u2192",
    "<-": "\u2190",
    "ti": "~",
    "ha": "^",
    "rs": "\\",
    "sl": "/",
    "ga": "`",
    "aa": "\u00b4",
    "R": "\u00ae",
    "Tm": "\u2122",
    "pc": "\u00b7",
    "fm": "\u2032",
    "sq": "\u25a1",
    "or": "|",
    "ba": "|",
    "lB": "[",
    "rB": "]",
    "lC": "{",
    "rC": "}",
    "la": "\u27e8",
    "ra": "\u27e9",
    "ss": "\u00df",
    "a:": "\u00e4",
    "o:": "\u00f6",
    "u:": "\u00fc",
    "e'": "\u00e9",
    "'e": "\u00e9",
    "a'": "\u00e1",
    "i'": "\u00ed",
    "n~": "\u00f1",
    "'a": "\u00e1",
    # strings of pod2man's preamble (perl, openssl) and of DocBook's (git), as nroff defines them
    "C`": '"',
    "C'": '"',
    'L"': '"',
    'R"': '"',
    "--": "--",
    "PI": "pi",
    "Aq": "'",
}
ESCAPE = re.compile(
    r"\\(?:f(?:\[[^\]]*\]|\(..|.)|s[-+]?(?:\d|\(\d\d|\[\d+\])|[(](..)|\[([^\]]*)\]|\*(?:\((..)|\[([^\]]*)\]|(.))|(.))"
)
# Single-character escapes: the printable ones, the rest (\&, \/, \,, \|, \^, \%, \c, \:) print nothing.
SIMPLE = {"-": "-", "e": "\\", "\\": "\\", " ": " ", "~": " ", "0": " ", "'": "\u00b4", "`": "`", ".": "."}
# Alternating-font macros join their arguments without spaces; the others join with one.
ALTERNATING = {"BR", "RB", "BI", "IB", "IR", "RI"}
FONT = {"B", "I", "SM", "SB"}
BREAKS = {"PP", "P", "LP", "TP", "IP", "HP", "SS", "sp", "br", "TQ", "Sp"}
DISPLAYS = ((".TS", ".EX", ".nf", ".Vb"), (".TE", ".EE", ".fi", ".Ve"))  # starts and ends of skipped blocks


def unescape(text: str) -> str:
    """Plain text of a roff text fragment: fonts and sizes go, glyphs become characters."""

    def one(m):
        name = next((g for g in m.group(1, 2, 3, 4, 5) if g is not None), None)  # a glyph's or string's name
        if name is not None:
            return GLYPHS.get(name, "")
        return SIMPLE.get(m.group(6), "") if m.group(6) is not None else ""  # fonts and sizes: nothing

    return ESCAPE.sub(one, text.split('\\"', 1)[0])


def macro_args(rest: str) -> list:
    """A macro line's arguments: blank-separated, double quotes group ("" is a literal quote)."""
    args, quoted = [], re.compile(r'\s*"((?:[^"]|"")*)"?|\s*(\S+)')
    for m in quoted.finditer(rest):
        args.append(m.group(1).replace('""', '"') if m.group(1) is not None else m.group(2))
    return args


def roff_paragraphs(lines: list) -> list:
    """Plain-text paragraphs of a section's roff lines (tables and displays skipped)."""
    paragraphs, words, skipping = [], [], False
    for line in lines:
        if line.startswith(DISPLAYS[0]):
            skipping = True
        if skipping:
            skipping = not line.startswith(DISPLAYS[1])
            continue
        if line.startswith((".", "'")):
            name, _, rest = line[1:].strip().partition(" ")
            if name in BREAKS:
                paragraphs.append(" ".join(words))
                words = []  # a .TP tag (an option's name) follows on the next line, and stays
                continue
            if name in ALTERNATING:
                words.append("".join(unescape(a) for a in macro_args(rest)))
            elif name in FONT:
                words.append(" ".join(unescape(a) for a in macro_args(rest)))
            continue  # any other request (.RS, .in, .UR's address, comments, ...) prints nothing we keep
        words.append(unescape(line))
    paragraphs.append(" ".join(words))
    return [p for p in (" ".join(p.split()) for p in paragraphs) if p]


def sections(source: str) -> dict:
    """Section name (upper case) -> its roff lines, lines ending in a backslash joined to the next."""
    by_name, current = {}, None
    for line in source.replace("\\\n", "").splitlines():
        if line.startswith((".SH", "'SH")):
            current = " ".join(macro_args(line[3:])).strip().upper()
            by_name.setdefault(current, [])
        elif current is not None:
            by_name[current].append(line)
    return by_name


def summary_pair(source: str):
    """(DESCRIPTION start, NAME summary) of one page's roff; None without a summary, with a DESCRIPTION under
    MIN_WORDS words or with a summary outside TARGET_CHARACTERS."""
    parts = sections(source)
    name_text = " ".join(roff_paragraphs(parts.get("NAME", [])))
    match = re.search(r"\s[-\u2013\u2014]\s", name_text)
    paragraphs = roff_paragraphs(parts.get("DESCRIPTION", []))
    if match is None or not paragraphs:
        return None
    words = []
    for paragraph in paragraphs:
        words += paragraph.split()
        if len(words) >= MAX_WORDS:
            break
    target = name_text[match.end() :].strip()
    if len(words) < MIN_WORDS or not target or not set(target) <= TARGET_CHARACTERS:
        return None
    return " ".join(words[:MAX_WORDS]), target


def split_of(page: str) -> str:
    bucket = int(hashlib.sha256(page.encode()).hexdigest(), 16) % 100
    return "validation" if bucket < HELD_OUT else "test" if bucket < 2 * HELD_OUT else "train"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--man-dir", type=Path, required=True, help="directory holding man1, man2, ...")
    args = parser.parse_args()
    paths = [p for p in sorted(args.man_dir.glob("man*/*.gz")) if not p.is_symlink()]
    rows = {"train": [], "validation": [], "test": []}
    seen_sources, seen_targets, skipped = set(), set(), 0
    for path in paths:
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
        pair = None if text.lstrip().startswith(".so ") else summary_pair(text)
        if pair is None or pair[0] in seen_sources or pair[1].lower() in seen_targets:
            skipped += 1
            continue
        seen_sources.add(pair[0])
        seen_targets.add(pair[1].lower())
        page = path.name.removesuffix(".gz")
        rows[split_of(page)].append({"source": pair[0], "target": pair[1], "page": page})
    for name, chosen in rows.items():
        write_jsonl_gz(OUT_DIR / f"{name}.jsonl.gz", chosen)
        print(f"manpages_summary/{name}: {len(chosen)} pages")
    print(f"skipped {skipped} pages besides the links (an include, no summary or description, or a repeat)")


if __name__ == "__main__":
    main()
