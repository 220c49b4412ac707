"""A 5x7 pixel font, so that images rvaed draws (`rvaed map`) carry their own labels without
an imaging library. Upper case, digits and a little punctuation; text is drawn upper-cased and
an unknown character shows as ``?``."""

import numpy as np

WIDTH, HEIGHT, ADVANCE = 5, 7, 6  # glyph size and the distance from one glyph to the next
_GLYPHS = {  # seven rows of five bits each, top row first
    "A": "0E 11 11 1F 11 11 11", "B": "1E 11 11 1E 11 11 1E", "C": "0E 11 10 10 10 11 0E",
    "D": "1C 12 11 11 11 12 1C", "E": "1F 10 10 1E 10 10 1F", "F": "1F 10 10 1E 10 10 10",
    "G": "0E 11 10 17 11 11 0F", "H": "11 11 11 1F 11 11 11", "I": "0E 04 04 04 04 04 0E",
    "J": "07 02 02 02 02 12 0C", "K": "11 12 14 18 14 12 11", "L": "10 10 10 10 10 10 1F",
    "M": "11 1B 15 15 11 11 11", "N": "11 11 19 15 13 11 11", "O": "0E 11 11 11 11 11 0E",
    "P": "1E 11 11 1E 10 10 10", "Q": "0E 11 11 11 15 12 0D", "R": "1E 11 11 1E 14 12 11",
    "S": "0F 10 10 0E 01 01 1E", "T": "1F 04 04 04 04 04 04", "U": "11 11 11 11 11 11 0E",
    "V": "11 11 11 11 11 0A 04", "W": "11 11 11 15 15 15 0A", "X": "11 11 0A 04 0A 11 11",
    "Y": "11 11 11 0A 04 04 04", "Z": "1F 01 02 04 08 10 1F", "0": "0E 11 13 15 19 11 0E",
    "1": "04 0C 04 04 04 04 0E", "2": "0E 11 01 02 04 08 1F", "3": "1F 02 04 02 01 11 0E",
    "4": "02 06 0A 12 1F 02 02", "5": "1F 10 1E 01 01 11 0E", "6": "06 08 10 1E 11 11 0E",
    "7": "1F 01 02 04 08 08 08", "8": "0E 11 11 0E 11 11 0E", "9": "0E 11 11 0F 01 02 0C",
    " ": "00 00 00 00 00 00 00", ".": "00 00 00 00 00 0C 0C", ",": "00 00 00 00 0C 04 08",
    "-": "00 00 00 1F 00 00 00", ":": "00 0C 0C 00 0C 0C 00", "=": "00 00 1F 00 1F 00 00",
    "(": "02 04 08 08 08 04 02", ")": "08 04 02 02 02 04 08", "/": "00 01 02 04 08 10 00",
    "_": "00 00 00 00 00 00 1F", ">": "08 04 02 01 02 04 08", "+": "00 04 04 1F 04 04 00",
    "?": "0E 11 01 02 04 00 04",
}


def _bitmap(rows: str) -> np.ndarray:
    bits = [[(int(row, 16) >> (WIDTH - 1 - i)) & 1 for i in range(WIDTH)] for row in rows.split()]
    return np.array(bits, dtype=bool)


BITMAPS = {char: _bitmap(rows) for char, rows in _GLYPHS.items()}


def text_width(text: str, scale: int = 1) -> int:
    """Pixels ``text`` takes across at ``scale``."""
    return max(0, len(text) * ADVANCE - 1) * scale


def draw_text(image: np.ndarray, left: int, top: int, text: str,
              colour: tuple[int, int, int], scale: int = 1) -> None:
    """Draw ``text`` into the (height, width, 3) ``image``; what falls outside is cut off."""
    for index, char in enumerate(text.upper()):
        glyph = BITMAPS.get(char, BITMAPS["?"])
        if scale > 1:
            glyph = np.repeat(np.repeat(glyph, scale, 0), scale, 1)
        x, y = left + index * ADVANCE * scale, top
        height, width = image.shape[:2]
        visible = glyph[max(0, -y):max(0, height - y), max(0, -x):max(0, width - x)]
        target = image[max(0, y):max(0, y) + visible.shape[0],
                       max(0, x):max(0, x) + visible.shape[1]]
        target[visible] = colour
