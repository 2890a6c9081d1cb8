"""The OCR handler's character error rate on text images rendered here (`make ocr-cer`).

A held set, made fresh on each run from a fixed seed, with no downloads: one to three lines
of English-like text (words, numbers, prices, dates, punctuation) drawn with Pillow in the
fonts found on the machine (DejaVu Sans, Serif, Mono, Bold and Condensed; Pillow's own font
where none is found) at several sizes. The "clean" set is the renders as drawn; the "noisy"
set is the same texts turned by up to +-2 degrees, lightly blurred and with Gaussian pixel
noise. The handler is called in-process, in batches of its `max_batch_size`.

CER = edit distance / reference length, summed over the set, after collapsing runs of
whitespace (the handler joins lines with a newline and boxes within a line with a space).
Run: `python -m models.ocr.evaluate [--count N] [--seed S]` from the repository root.
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .handler import OCR

FONT_FILES = [
    "DejaVuSans.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansCondensed.ttf",
]
SIZES = [24, 32, 40, 48]  # font size in pixels: cap height about 0.7 of it
_VOCABULARY = (
    "the of and to in is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when "
    "will more if no out so said what up its about into than them can only other new some "
    "could time these two may then do first any my now such like our over man me even most "
    "made after also did many before must through back years where much your way well down "
    "should because each just those people how too little state good very make world still "
    "own see men work long get here between both life being under never day same another "
    "know while last might us great old year off come since against go came right used take "
    "three invoice account total amount payment order number customer address street city "
    "delivery balance date reference product quantity price service company office phone"
)
WORDS = _VOCABULARY.split()


def find_fonts(folders: tuple[str, ...] = ("/usr/share/fonts",)) -> list[Path]:
    """The FONT_FILES present under `folders`, in FONT_FILES order."""
    found: dict[str, Path] = {}
    for folder in folders:
        for path in Path(folder).rglob("*.ttf") if Path(folder).is_dir() else []:
            found.setdefault(path.name, path)
    return [found[name] for name in FONT_FILES if name in found]


def load_font(path: Path | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A TrueType font at `size` px; Pillow's built-in scalable font when `path` is None."""
    return ImageFont.truetype(str(path), size) if path else ImageFont.load_default(size)


def make_line(rng: random.Random) -> str:
    """One line of 3 to 7 words, sometimes with a number, a price or a date."""
    words = [rng.choice(WORDS) for _ in range(rng.randint(3, 7))]
    extra = rng.random()
    if extra < 0.2:
        words.insert(rng.randrange(len(words) + 1), str(rng.randint(2, 9999)))
    elif extra < 0.35:
        words.append(f"${rng.randint(1, 999)}.{rng.randint(0, 99):02d}")
    elif extra < 0.45:
        words.append(f"{rng.randint(2000, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}")
    if rng.random() < 0.5:
        words[0] = words[0].capitalize()
    line = " ".join(words)
    return line + rng.choice(["", "", ".", ",", ":", "?"])


def render(lines: list[str], font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> Image.Image:
    """Black text on white, one line per entry, with a margin of about one line height."""
    size = int(getattr(font, "size", 24))
    boxes = [font.getbbox(line) for line in lines]
    step = int(size * 1.5)
    width = max(int(box[2]) for box in boxes) + 2 * size
    image = Image.new("RGB", (width, step * len(lines) + 2 * size), "white")
    draw = ImageDraw.Draw(image)
    for n, line in enumerate(lines):
        draw.text((size, size + n * step), line, font=font, fill="black")
    return image


def degrade(image: Image.Image, rng: random.Random) -> Image.Image:
    """Turn by up to +-2 degrees, blur lightly, add Gaussian noise (sigma 6 to 14 grey levels)."""
    turned = image.rotate(
        rng.uniform(-2, 2), resample=Image.Resampling.BICUBIC, expand=True, fillcolor="white"
    )
    blurred = turned.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    pixels = np.asarray(blurred, dtype=np.float32)
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0, 1, pixels.shape[:2])[..., None]
    sigma = rng.uniform(6, 14)
    return Image.fromarray(np.clip(pixels + sigma * noise, 0, 255).astype(np.uint8))


def make_set(count: int, seed: int) -> list[tuple[str, Image.Image, Image.Image]]:
    """`count` samples: (reference text, clean render, noisy render), fonts and sizes cycling."""
    rng = random.Random(seed)
    fonts: list[Path | None] = list(find_fonts()) or [None]
    samples = []
    for n in range(count):
        font = load_font(fonts[n % len(fonts)], SIZES[(n // len(fonts)) % len(SIZES)])
        lines = [make_line(rng) for _ in range(rng.randint(1, 3))]
        clean = render(lines, font)
        samples.append(("\n".join(lines), clean, degrade(clean, rng)))
    return samples


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions cost 1."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            )
        previous = current
    return previous[-1]


def normalise(text: str) -> str:
    return " ".join(text.split())


def character_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Summed edit distance over summed reference length, whitespace runs collapsed."""
    pairs = [(normalise(r), normalise(h)) for r, h in zip(references, hypotheses, strict=True)]
    return sum(edit_distance(r, h) for r, h in pairs) / max(1, sum(len(r) for r, _ in pairs))


def read_all(model: OCR, images: list[Image.Image]) -> tuple[list[str], float, float]:
    """The handler's text for each image, batch by batch; wall and CPU seconds it took."""
    texts: list[str] = []
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(images), model.max_batch_size):
        batch = [{"image": image} for image in images[start : start + model.max_batch_size]]
        texts += [result["text"] for result in model.predict(batch)]
    return texts, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=24, help="images per set (default 24)")
    parser.add_argument("--seed", type=int, default=26, help="the held set's seed (default 26)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda:N (default cpu)")
    parser.add_argument("--show", action="store_true", help="print every misread image")
    args = parser.parse_args()

    fonts = find_fonts()
    print(f"fonts: {', '.join(f.stem for f in fonts) or 'Pillow built-in'}; sizes {SIZES} px")
    samples = make_set(args.count, args.seed)
    started = time.perf_counter()
    model = OCR()
    model.setup(args.device)
    print(f"setup: {time.perf_counter() - started:.1f} s on {args.device}")
    references = [reference for reference, _, _ in samples]
    sets = {"clean": [clean for _, clean, _ in samples], "noisy": [noisy for *_, noisy in samples]}
    for label, images in sets.items():
        texts, seconds, cpu = read_all(model, images)
        cer = character_error_rate(references, texts)
        chars = sum(len(normalise(r)) for r in references)
        print(
            f"{label}: CER {cer:.2%} over {len(images)} images ({chars} characters), "
            f"{len(images) / seconds:.2f} images/s at batch {model.max_batch_size}, "
            f"{cpu / len(images):.1f} CPU-s per image ({torch.get_num_threads()} threads)"
        )
        if args.show:
            for reference, text in zip(references, texts, strict=True):
                if normalise(reference) != normalise(text):
                    print(f"  want {normalise(reference)!r}\n  got  {normalise(text)!r}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MB")


if __name__ == "__main__":
    main()
