"""Build data/bible_en_es/ (English -> Spanish translation, verse-aligned) from two public-domain Bibles (stdlib only).

Source: the SWORD modules of Debian's ``sword-text-kjv`` (King James Version, 1769 text) and ``sword-text-sparv``
(Reina-Valera 1909) packages::

    cd /tmp && apt-get download sword-text-kjv sword-text-sparv
    for f in sword-text-*.deb; do dpkg -x $f /tmp/sword; done
    python data/build_bible_en_es.py --sword-dir /tmp/sword/usr/share/sword

A SWORD zText module keeps each testament in three files: ``.bzz`` (zlib-compressed blocks of OSIS text), ``.bzs``
(per block: offset, compressed size, uncompressed size; little-endian uint32) and ``.bzv`` (per entry of the
versification: block, offset in the uncompressed block, size; uint32, uint32, uint16). Both modules use the KJV
versification, so entry i of one is entry i of the other. Headings (module, book, chapter) are entries too; the
chapter headings name the chapter (``<chapter osisID="Matt.1" sID=...>``). Verse text is stripped of its OSIS
markup: Strong's numbers and other attributes, notes and titles go; the words stay.

Rows: {"source": English verse, "target": Spanish verse, "ref": "Matt.1.1"}; a verse empty in either Bible is left
out. Split by chapter with seed 0 (5% of the chapters each for validation and test). Byte-identical across runs.
"""

import argparse
import html
import random
import re
import struct
import zlib
from pathlib import Path

from build_wordnet import write_jsonl_gz

SEED = 0
HELD_OUT = 0.05
MODULES = {"source": "engKJV2006eb", "target": "spaRV1909eb"}
OUT_DIR = Path(__file__).resolve().parent / "bible_en_es"
CHAPTER = re.compile(r'<chapter\b[^>]*\bsID="([^"]+)"')
DROPPED = re.compile(r"<(note|title)\b[^>]*>.*?</\1>", re.DOTALL)
TAG = re.compile(r"<[^>]+>")
ADJACENT = re.compile(r"(</[^>]+>|<[^>]+/>)(?=<[^/])")  # an element closing right where the next word's opens


def entries(module_dir: Path, testament: str) -> list:
    """Every entry of a testament's versification, as stored (OSIS markup); '' where it is empty."""
    index = (module_dir / f"{testament}.bzs").read_bytes()
    verses = (module_dir / f"{testament}.bzv").read_bytes()
    data = (module_dir / f"{testament}.bzz").read_bytes()
    blocks = [struct.unpack_from("<III", index, i) for i in range(0, len(index), 12)]
    unpacked, out = {}, []
    for i in range(0, len(verses), 10):
        block, offset, size = struct.unpack_from("<IIH", verses, i)
        if size == 0:
            out.append("")
            continue
        if block not in unpacked:
            start, length, _ = blocks[block]
            unpacked[block] = zlib.decompress(data[start : start + length])
        out.append(unpacked[block][offset : offset + size].decode("utf-8"))
    return out


def plain(osis: str) -> str:
    """The words of an OSIS verse: tags removed (punctuation stays on its word), words in adjacent elements apart."""
    return " ".join(html.unescape(TAG.sub("", ADJACENT.sub(r"\1 ", DROPPED.sub(" ", osis)))).split())


def verses(sword_dir: Path):
    """(chapter, verse number, English, Spanish) for every verse both Bibles have."""
    for testament in ("ot", "nt"):
        both = [
            entries(sword_dir / "modules" / "texts" / "ztext" / MODULES[side], testament)
            for side in ("source", "target")
        ]
        if len(both[0]) != len(both[1]):
            raise SystemExit(f"{testament}: the two modules' versifications differ in length")
        chapter, number = None, 0
        for en, es in zip(*both):
            heading = CHAPTER.search(en) or CHAPTER.search(es)
            if heading:  # a chapter heading: the verses that follow are its
                chapter, number = heading.group(1), 0
                continue
            if chapter is None or 'type="book"' in en:
                continue
            number += 1
            source, target = plain(en), plain(es)
            if source and target:
                yield chapter, number, source, target


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sword-dir", type=Path, required=True, help="directory holding mods.d/ and modules/")
    args = parser.parse_args()
    by_chapter = {}
    for chapter, number, source, target in verses(args.sword_dir):
        by_chapter.setdefault(chapter, []).append({"source": source, "target": target, "ref": f"{chapter}.{number}"})
    chapters = sorted(by_chapter)
    rng = random.Random(SEED)
    rng.shuffle(chapters)
    n = round(HELD_OUT * len(chapters))
    splits = {"validation": chapters[:n], "test": chapters[n : 2 * n], "train": chapters[2 * n :]}
    for name, chosen in splits.items():
        rows = [row for chapter in sorted(chosen, key=chapters.index) for row in by_chapter[chapter]]
        write_jsonl_gz(OUT_DIR / f"{name}.jsonl.gz", rows)
        print(f"bible_en_es/{name}: {len(rows)} verse pairs from {len(chosen)} chapters")


if __name__ == "__main__":
    main()
