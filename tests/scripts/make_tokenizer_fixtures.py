#!/usr/bin/env python3
"""Generates the BPE tokenizer fixtures in tests/fixtures/tokenizer/ with the reference
Hugging Face `tokenizers` package, so the C++ tokenizer is checked against the real thing.

    ~/.cache/harmonic/venv/bin/python tests/scripts/make_tokenizer_fixtures.py

Writes:
  tokenizer.json           GPT-2 style ByteLevel BPE, merges as strings "a b"
  tokenizer_pairs.json     the same, merges as pairs ["a", "b"]
  tokenizer_prefix_space.json   ByteLevel(add_prefix_space=true) inside a Sequence
  tokenizer_no_regex.json  ByteLevel(use_regex=false): the whole text is one piece
  tokenizer_split.json     Sequence[Split(Llama-3 regex, Isolated), ByteLevel(use_regex=false)]
  tokenizer_ignore_merges.json  model.ignore_merges = true
  tokenizer_added.json     added tokens with every flag: single_word, lstrip, rstrip, normalized
  tokenizer_template.json  post_processor Sequence[ByteLevel, TemplateProcessing(BOS $A EOS)]
  tokenizer_roberta.json   post_processor RobertaProcessing (cls $A sep)
  tokenizer_split_*.json   Split behaviours Removed, MergedWithPrevious, MergedWithNext (inverted),
                           Contiguous, and a regex with empty matches (x*)
  cases.json               [{text, ids, offsets}] for tokenizer.json (offsets in bytes)
  cases_variants.json      {file: [{text, ids, offsets}]} for the variants; ids are those of
                           encode(text) (add_special_tokens=True), "fragment_ids" those without the
                           post-processor where they differ, and "offsets" (of the fragment) only
                           where the tokens spell the text exactly

The output is deterministic for a given `tokenizers` version; the files are committed, so this
only needs rerunning when the cases change.
"""
import copy
import json
import pathlib
import sys

import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "tokenizer"

# Training text: enough variety that merges cover English words, contractions, digits,
# whitespace runs and multi-byte characters (so merges join bytes inside one character).
CORPUS = [
    "The quick brown fox jumps over the lazy dog. The dog didn't care; it's a lazy dog.",
    "We'll see what they've done: I'm sure you'd like it, and they're happy.",
    "Language models read text as tokens. A token is a short string of bytes that the "
    "tokenizer learned from a corpus. Byte-level BPE starts from the 256 bytes and merges "
    "the most frequent pairs until the vocabulary is full.",
    "State-space models keep a hidden state that is updated at every step; a hierarchical "
    "model keeps several states, each running at its own time scale.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 1000 2024 3.14159 2,718,281 1e-9 -17 +23 99%.",
    "Prices were $12.50, €9.99 and £7; the meeting is at 10:30 on 2024-03-15.",
    "Punctuation!!! Really?? Yes... (parentheses) [brackets] {braces} <angle> \"quotes\" 'single'",
    "email@example.com https://example.org/path?query=1&x=2#frag C:\\Windows\\path",
    "    indented line\n\tTabbed line\n\n\nThree newlines above.\r\nWindows line ending.\n",
    "Größe, Übermäßig, schön, Straße, Mädchen, Äpfel, Öl, Füße — das ist überall üblich.",
    "Der Bär läuft über die Brücke. Müller und Schröder gehen früh nach Hause.",
    "Ελληνικά: Καλημέρα κόσμε. Η γλώσσα είναι όμορφη. Αλφα, Βήτα, Γάμμα, Δέλτα.",
    "日本語のテキストです。東京は大きな都市です。漢字とひらがなとカタカナ。",
    "中文文本：你好，世界。今天天气很好。我们学习语言模型。",
    "한국어 텍스트: 안녕하세요 세계.",
    "Emoji: 😀 😃 😄 🚀 🌍 👍🏽 ❤️ 🎉🎉🎉 👨‍👩‍👧‍👦",
    "Mixed: naïve café résumé coöperate façade jalapeño São Paulo Zürich Kraków.",
    "Кириллица: Привет, мир! Как дела? Всё хорошо.",
    "עברית: שלום עולם. العربية: مرحبا بالعالم.",
    "Whitespace   runs    of     spaces, trailing spaces   \n  and\u00a0no-break\u2003em space.",
    "Code: for (int i = 0; i < n; ++i) { sum += x[i] * w[i]; } // done",
    "def f(x):\n    return x ** 2 + 3 * x - 1\n\nprint(f(10))\n",
]

TEXTS = [
    "",
    " ",
    "   ",
    "  leading",
    "trailing newlines\n\n\n",
    "\t\n mixed",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "don't",
    "it's",
    "We're sure they'll say we'd've done it; I'm not.",
    "'s 'S 'LL 're",
    "1234567890123456789",
    "3.14159 and 2,718,281 and -17",
    "Größe über Straße",
    "Καλημέρα κόσμε",
    "東京は大きな都市です。",
    "你好，世界",
    "😀🚀 ok 👍🏽",
    "👨‍👩‍👧‍👦 family",
    "naïve café",
    "a  b   c    d",
    "line one\nline two\r\nline three",
    "\n",
    "\r\n\r\n",
    "word   \n  next",
    "end with space ",
    "x",
    "!!!???...",
    "email@example.com https://example.org/?q=1",
    "\u00a0non-breaking\u2003spaces\u3000ideographic",
    # U+180E is not whitespace for the reference (Oniguruma) but is for PCRE2's default \s.
    "a\u180eb \u180e c\u1680d\u0085e \u180e!? it\u180e's",
    "Mixed 中文 and English 123 with émojis 🎉",
    "    def f(x):\n        return x\n",
    "Привет, мир!",
    "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
    # Added tokens in the text: the special token must come out as its own id.
    "Hello<|endoftext|>world",
    "end of one document.<|endoftext|>\r\nStart of the next <|endoftext|> with spaces",
    "<|endoftext|><|endoftext|>",
    "<|endoftext|",
    "an <extra_token> and<extra_token>x",
    "caf\u00e9<|endoftext|>\u6771\u4eac\U0001F600<extra_token>",
]

# Texts for the added-token and Split variants: the tokens at word edges, white space of several
# kinds around them, CRLF, emoji, CJK and combining marks next to them.
EXTRA_TEXTS = [
    "x <mask> y\t<mask>\u2000z<mask>  ",
    "<mask>start and end<mask>",
    "a<mask>b <mask>b a<mask> <mask>",
    "word <sep>  next<sep>\r\n<sep>",
    "e\u0301<mask> n\u0303 <mask>\u0301 \u0915\u093f<mask>",
    "\u6771\u4eac<mask>\u3000<mask>\u3000\U0001F600 <mask>\U0001F680",
    "hello world, hello<|endoftext|>hello",
    "xxaxbab",
    "xx x\r\nxax  \u00e9x\U0001F600xx",
    "\u00a0<mask>\u00a0 <sep>\u0085",
]


def bytes_to_unicode():
    """GPT-2's byte -> printable character table (the one ByteLevel uses)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


UNICODE_TO_BYTE = {c: b for b, c in bytes_to_unicode().items()}


def token_bytes(tok, token_id, added):
    if token_id in added:
        return added[token_id].encode("utf-8")
    return bytes(UNICODE_TO_BYTE[c] for c in tok.id_to_token(token_id))


def encode_case(tok, text, added, prefix_space=False, lossless=True):
    """ids and the byte offset of each token's first byte, computed from token lengths and
    cross-checked against the reference's char offsets."""
    whole = tok.encode(text).ids
    enc = tok.encode(text, add_special_tokens=False)
    case = {"text": text, "ids": whole}
    if enc.ids != whole:
        case["fragment_ids"] = enc.ids
    raw = text.encode("utf-8")
    pieces = [token_bytes(tok, i, added) for i in enc.ids]
    joined = b"".join(pieces)
    if prefix_space:
        # The inserted spaces are not in the input; only check what remains.
        assert joined.replace(b" ", b"") == raw.replace(b" ", b""), (text, joined)
        return case
    if not lossless:
        return case
    assert joined == raw, (text, joined, raw)
    offsets, pos = [], 0
    for piece in pieces:
        offsets.append(pos)
        pos += len(piece)
    # Char offsets -> byte offsets; a token that starts inside a character (the reference
    # gives it the whole character's offsets) is only checked to lie within that character.
    char_to_byte = [0]
    for ch in text:
        char_to_byte.append(char_to_byte[-1] + len(ch.encode("utf-8")))
    for (start, end), off in zip(enc.offsets, offsets):
        assert char_to_byte[start] <= off < max(char_to_byte[end], char_to_byte[start] + 1), (text, start, off)
    case["offsets"] = offsets
    return case


def train():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=800,
        min_frequency=1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 3, trainer=trainer)
    # An added token outside model.vocab: vocab_size must count it.
    tok.add_tokens(["<extra_token>"])
    return tok


def with_merges_as(doc, form):
    doc = copy.deepcopy(doc)
    merges = doc["model"]["merges"]
    if form == "strings":
        doc["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in merges]
    else:
        doc["model"]["merges"] = [m.split(" ") if isinstance(m, str) else m for m in merges]
    return doc


def write_json(name, doc):
    (OUT / name).write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def dump_cases(cases):
    # One case per line: readable diffs when the cases change.
    return "[\n" + ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n]\n"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tok = train()
    doc = json.loads(tok.to_str())
    merges = doc["model"]["merges"]
    writes_pairs = bool(merges) and isinstance(merges[0], list)
    print(f"tokenizers {tokenizers.__version__} writes merges as {'pairs' if writes_pairs else 'strings'}; "
          f"vocab {len(doc['model']['vocab'])}, merges {len(merges)}, vocab_size {tok.get_vocab_size()}")

    strings_doc = with_merges_as(doc, "strings")
    pairs_doc = with_merges_as(doc, "pairs")
    write_json("tokenizer.json", strings_doc)
    write_json("tokenizer_pairs.json", pairs_doc)

    added = {t["id"]: t["content"] for t in doc["added_tokens"]}
    reference = Tokenizer.from_file(str(OUT / "tokenizer.json"))
    reference_pairs = Tokenizer.from_file(str(OUT / "tokenizer_pairs.json"))
    cases = []
    for text in TEXTS:
        case = encode_case(reference, text, added)
        assert reference_pairs.encode(text).ids == case["ids"], text
        cases.append(case)
    (OUT / "cases.json").write_text(dump_cases(cases), encoding="utf-8")

    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    variants = {}

    def variant(name, edit, prefix_space=False, texts=TEXTS, lossless=True, added_map=added):
        v = copy.deepcopy(strings_doc)
        edit(v)
        write_json(name, v)
        t = Tokenizer.from_file(str(OUT / name))
        variants[name] = [encode_case(t, text, added_map, prefix_space, lossless) for text in texts]

    variant("tokenizer_prefix_space.json", lambda v: v.update(pre_tokenizer={
        "type": "Sequence", "pretokenizers": [dict(byte_level, add_prefix_space=True)]}), prefix_space=True)
    variant("tokenizer_no_regex.json", lambda v: v.update(pre_tokenizer=dict(byte_level, use_regex=False)))
    llama3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")
    variant("tokenizer_split.json", lambda v: v.update(pre_tokenizer={
        "type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": llama3}, "behavior": "Isolated", "invert": False},
            dict(byte_level, use_regex=False)]}))
    variant("tokenizer_ignore_merges.json", lambda v: v["model"].update(ignore_merges=True))

    def added_token(content, token_id, special=True, normalized=False, **flags):
        return dict({"id": token_id, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                     "normalized": normalized, "special": special}, **flags)

    added_variant = {0: "<|endoftext|>", 800: "<extra_token>", 801: "<mask>", 802: "<sep>", 803: "hello"}
    variant("tokenizer_added.json", lambda v: v["added_tokens"].extend([
        added_token("<mask>", 801, lstrip=True, rstrip=True, single_word=True),
        added_token("<sep>", 802, rstrip=True),
        added_token("hello", 803, special=False, normalized=True, single_word=True)]),
        texts=TEXTS + EXTRA_TEXTS, lossless=False, added_map=added_variant)
    template = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                           {"SpecialToken": {"id": "<extra_token>", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [0], "tokens": ["<|endoftext|>"]},
                                   "<extra_token>": {"id": "<extra_token>", "ids": [800], "tokens": ["<extra_token>"]}}}
    variant("tokenizer_template.json", lambda v: v.update(post_processor={
        "type": "Sequence", "processors": [dict(byte_level, trim_offsets=False), template]}), texts=TEXTS + EXTRA_TEXTS)
    variant("tokenizer_roberta.json", lambda v: v.update(post_processor={
        "type": "RobertaProcessing", "sep": ["<extra_token>", 800], "cls": ["<|endoftext|>", 0],
        "trim_offsets": False, "add_prefix_space": False}), texts=TEXTS[:8] + EXTRA_TEXTS[:2])

    def split_variant(name, pattern, behavior, invert, lossless=True):
        variant(name, lambda v: v.update(pre_tokenizer={
            "type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": pattern, "behavior": behavior, "invert": invert},
                dict(byte_level, use_regex=False)]}), texts=TEXTS + EXTRA_TEXTS, lossless=lossless)

    split_variant("tokenizer_split_removed.json", {"Regex": r"\s+"}, "Removed", False, lossless=False)
    split_variant("tokenizer_split_removed_inverted.json", {"Regex": r"\p{L}+"}, "Removed", True, lossless=False)
    split_variant("tokenizer_split_merged_previous.json", {"String": " "}, "MergedWithPrevious", False)
    split_variant("tokenizer_split_merged_next.json", {"Regex": r"[^\s]+"}, "MergedWithNext", True)
    split_variant("tokenizer_split_contiguous.json", {"Regex": r"[\p{P}\s]"}, "Contiguous", False)
    split_variant("tokenizer_split_empty_match.json", {"Regex": "x*"}, "Isolated", False)
    (OUT / "cases_variants.json").write_text(
        "{\n" + ",\n".join(f"{json.dumps(name)}: {dump_cases(cs).rstrip()}" for name, cs in variants.items()) + "\n}\n",
        encoding="utf-8")
    print(f"wrote {len(cases)} cases and {len(variants)} variants to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
