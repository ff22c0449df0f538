"""GNU .mo catalogues written byte by byte, as msgfmt lays them out (header entry first, sorted keys)."""

import struct

HEADER = "Project-Id-Version: kite 1.0\nLanguage: {lang}\nContent-Type: text/plain; charset={charset}\n"


def write_mo(entries, lang="de", charset="UTF-8", byteorder="<", header=HEADER):
    """A GNU .mo file: entries are (context or None, msgid, msgid_plural or None, [msgstr, ...])."""
    pairs = [(b"", header.format(lang=lang, charset=charset).encode(charset))]
    for context, msgid, plural, msgstr in entries:
        key = (f"{context}\x04" if context else "") + msgid + (f"\x00{plural}" if plural else "")
        pairs.append((key.encode("utf-8"), "\x00".join(msgstr).encode(charset)))
    pairs.sort()
    count = len(pairs)
    originals, translations = 28, 28 + 8 * count
    offset = translations + 8 * count
    tables, blob = [b"", b""], b""
    for column in (0, 1):
        for pair in pairs:
            tables[column] += struct.pack(byteorder + "II", len(pair[column]), offset + len(blob))
            blob += pair[column] + b"\x00"
    head = struct.pack(byteorder + "7I", 0x950412DE, 0, count, originals, translations, 0, 0)
    return head + tables[0] + tables[1] + blob


def mo_bytes(pairs):
    """A little-endian GNU .mo catalogue holding ``(msgid, msgstr)`` pairs (plus a header entry that names
    only the charset)."""
    entries = [(None, msgid, None, [msgstr]) for msgid, msgstr in pairs]
    return write_mo(entries, header="Content-Type: text/plain; charset=UTF-8\n")
