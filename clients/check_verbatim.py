"""Checks that the committed guide clients are still the integration guide's code, byte for byte.

Usage: check_verbatim.py GUIDE.md
Each client file is a comment header followed by exactly the guide's fenced block that defines
`class LoomipayClient` in that language.
"""
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
COPIES = {
    b"python": (HERE / "python" / "loomipay_client.py", b"#"),
    b"javascript": (HERE / "node" / "loomipay_client.js", b"//"),
}


def client_block(guide: bytes, lang: bytes) -> bytes:
    for match in re.finditer(rb"^```" + lang + rb"\n(.*?\n)```$", guide, re.S | re.M):
        if b"class LoomipayClient" in match.group(1):
            return match.group(1)
    raise SystemExit(f"guide has no {lang.decode()} block defining LoomipayClient")


def main() -> int:
    guide = Path(sys.argv[1]).read_bytes()
    failed = False
    for lang, (path, comment) in COPIES.items():
        block = client_block(guide, lang)
        copy = path.read_bytes()
        header = copy[: len(copy) - len(block)]
        header_ok = all(line.startswith(comment) or not line for line in header.split(b"\n"))
        if not copy.endswith(block) or not header_ok:
            print(f"{path.relative_to(HERE.parent)}: not the guide's {lang.decode()} client verbatim "
                  "(only a comment header may precede it)", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
