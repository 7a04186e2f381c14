"""The tiny models' vocabulary: a byte-level BPE trained on a fixed corpus, cut like Qwen2's.

    train_bpe(special_tokens, added_tokens) -> tokenizers.Tokenizer

Trained afresh for every build (in well under a second), deterministically: the same corpus,
tokens and `tokenizers` version give the same vocabulary. tokenizers is imported only inside
`train_bpe`.
"""

from collections.abc import Sequence
from typing import Any

TARGET_VOCAB_SIZE = 3000
"""Cap on the learned BPE vocabulary; TRAINING_TEXT runs out of merges first, near 2700."""

# Qwen2's pre-tokenizer split (transformers.models.qwen2.tokenization_qwen2.PRETOKENIZE_REGEX),
# copied so that words, digits and whitespace are cut the way the real models cut them.
QWEN2_SPLIT_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def train_bpe(special_tokens: Sequence[str], added_tokens: Sequence[str]) -> Any:
    """A `tokenizers.Tokenizer`: byte-level BPE on TRAINING_TEXT, plus `special_tokens` (which
    decoding may skip) and `added_tokens` (which it keeps), each a single id.

    Byte-level, so any text encodes without unknown tokens, and NFC-normalized like Qwen's own
    tokenizer (transformers 5 imposes NFC on every qwen2 tokenizer anyway): text already in NFC
    round-trips through encode/decode exactly. The added tokens come after the learned
    vocabulary, in the order given, as in Qwen's files.
    """
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=TARGET_VOCAB_SIZE,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(TRAINING_TEXT.splitlines(keepends=True), trainer)
    backend.add_special_tokens(
        [AddedToken(token, special=True, normalized=False) for token in special_tokens]
    )
    backend.add_tokens(
        [AddedToken(token, special=False, normalized=False) for token in added_tokens]
    )
    return backend


# Training text for the tokenizer: English prose, code and several scripts, so that common words,
# identifiers and non-Latin characters get their own merges. The content only shapes the
# vocabulary; any byte sequence still encodes (byte fallback is built into byte-level BPE).
TRAINING_TEXT = r"""
The capital of France is Paris. The capital of Germany is Berlin. The capital of Japan is Tokyo.
The capital of Italy is Rome, and the capital of Spain is Madrid. London is the capital of the
United Kingdom, Ottawa is the capital of Canada, and Canberra is the capital of Australia.
What is the capital of France? Paris is the largest city in France and its capital.
Hello! How are you today? I am fine, thank you. Can you help me with a question?
The system prompt sets the rules, the user asks, the assistant answers, and a tool returns data.
You are a helpful assistant. The user message comes next, then the assistant reply and its tools.
Of course. I would be happy to help. Please tell me what you need, and I will do my best.
Let me think about this step by step. First, we need to understand the problem. Then we can
write down what we know, find what we are looking for, and check the answer at the end.
The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with one step.
Water boils at 100 degrees Celsius at sea level and freezes at 0 degrees. The speed of light is
about 299,792 kilometers per second. The Earth goes around the Sun once a year, and the Moon goes
around the Earth about once a month. There are 365 days in a year, 24 hours in a day, 60 minutes
in an hour and 60 seconds in a minute.
If x + 3 = 7, then x = 4. If 2y = 10, then y = 5. The sum of 12 and 30 is 42. Two times three
is six. The square root of 81 is 9, and 15 percent of 200 is 30. One plus one equals two.
Please write a short poem about the sea. The sea is wide and deep and blue; it sings at night and
shines at noon. The waves come in, the waves go out, and no one knows what they are about.
Summarize the following text in one sentence. Translate this sentence into French. Answer the
question using only the information in the document. Explain your reasoning before you answer.
The user asked for the weather in Lisbon. The assistant called a tool to look up the forecast,
read the result, and replied: it will be sunny with a high of 24 degrees and a light breeze.
Okay, so the user wants to know the answer. Hmm, wait, let me check that again. Actually, I think
the first approach was right. So the final answer is 12. Alternatively, we could count directly.
Good morning, good afternoon, good evening and good night. Thanks for your patience. You are
welcome. Sorry, I do not know the answer to that question, but here is what I can tell you.
The history of computing began with mechanical calculators, then vacuum tubes, transistors and
integrated circuits. Today a small computer can run a language model that writes text, answers
questions, translates between languages and helps people write programs.
A language model reads a sequence of tokens and predicts the next one. Each token is a piece of
a word, a whole word, a number, a space or a symbol. The model repeats this until it reaches an
end token or a length limit. Temperature, top p and top k control how random the choice is.
The library is open from nine in the morning until six in the evening, Monday to Saturday.
Books must be returned within three weeks. Children under twelve must be with an adult.
Our team meets every Tuesday to review progress, discuss problems and plan the next steps.
The report is due on Friday. Please send your comments by Thursday so that we have time to
update the draft. Let us know if anything is unclear or if you need more information.
She said that they would arrive at noon, but the train was late, so they arrived at two. He didn't
know where they'd gone; we're sure it's fine, and you'll see them soon. I'm here, they've left.

def fibonacci(n: int) -> int:
    # Return the n-th Fibonacci number.
    if n < 2:
        return n
    a, b = 0, 1
    for _ in range(n - 1):
        a, b = b, a + b
    return b


class Stack:
    def __init__(self) -> None:
        self.items: list[int] = []

    def push(self, item: int) -> None:
        self.items.append(item)

    def pop(self) -> int:
        if not self.items:
            raise IndexError("pop from an empty stack")
        return self.items.pop()


import json
import os
from pathlib import Path


def load_config(path: str) -> dict[str, object]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


if __name__ == "__main__":
    config = load_config(os.environ.get("CONFIG", "config.json"))
    print(f"loaded {len(config)} keys from {Path('config.json').resolve()}")
    for key, value in sorted(config.items()):
        print(key, "=", value)

async function fetchWeather(city) {
  const response = await fetch(`https://api.example.com/weather?city=${city}`);
  if (!response.ok) {
    throw new Error(`request failed: ${response.status}`);
  }
  const data = await response.json();
  return { city, temperature: data.temp, conditions: data.conditions };
}

const numbers = [1, 2, 3, 4, 5];
const squares = numbers.map((x) => x * x).filter((x) => x % 2 === 1);
console.log("squares:", squares.join(", "));

SELECT name, COUNT(*) AS total FROM orders WHERE status = 'shipped'
GROUP BY name ORDER BY total DESC;
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE);

#include <stdio.h>
int main(void) {
    for (int i = 0; i < 10; i++) {
        printf("%d\n", i * i);
    }
    return 0;
}

fn main() {
    let words = vec!["alpha", "beta", "gamma"];
    for (index, word) in words.iter().enumerate() {
        println!("{index}: {word}");
    }
}

$ git status && git diff --stat
$ curl -s -X POST http://localhost:8080/v1/chat/completions -H "Content-Type: application/json"
$ python -m pip install --upgrade pip && pytest -q tests/

{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
{"role": "user", "content": "What is the weather like in Paris today?"}
{"role": "assistant", "content": "It is 18 degrees and cloudy in Paris."}
{"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}
<html><head><title>Example</title></head><body><p class="note">Hello, world!</p></body></html>
# Heading
- item one
- item two
**bold** and _italic_ and `code`; 1. first 2. second 3. third
| column | value |
|--------|-------|
| alpha  | 0.25  |

Français : Bonjour, comment ça va ? Très bien, merci. L'été est chaud et l'hiver est froid.
Deutsch: Guten Tag! Wie geht's? Die Straße ist schön, und das Mädchen hört Musik über Bäume.
Español: ¿Dónde está la biblioteca? ¡Qué día tan bonito! El niño come una manzana.
Português: Olá, tudo bem? A informação está na página seguinte. Obrigado pela atenção.
Italiano: Buongiorno, come stai? La città è molto bella e il caffè è buonissimo.
Русский: Привет, как дела? Москва — столица России. Спасибо за помощь, до свидания.
Ελληνικά: Καλημέρα, τι κάνεις; Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.
中文：你好，今天天气很好。北京是中国的首都。我们一起学习人工智能和编程吧。谢谢你的帮助。
日本語：こんにちは、元気ですか。東京は日本の首都です。ありがとうございます。今日はいい天気ですね。
한국어: 안녕하세요, 만나서 반갑습니다. 서울은 한국의 수도입니다. 감사합니다.
العربية: مرحبا، كيف حالك؟ القاهرة هي عاصمة مصر. شكرا جزيلا.
עברית: שלום, מה שלומך? ירושלים היא עיר עתיקה.
हिन्दी: नमस्ते, आप कैसे हैं? दिल्ली भारत की राजधानी है। धन्यवाद।
ไทย: สวัสดีครับ กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย ขอบคุณ
Tiếng Việt: Xin chào, bạn khỏe không? Hà Nội là thủ đô của Việt Nam.
Türkçe: Merhaba, nasılsın? Ankara Türkiye'nin başkentidir. Teşekkür ederim.
Polski: Dzień dobry! Warszawa jest stolicą Polski. Dziękuję bardzo, żółć i źdźbło.
Emoji: 😀 😂 👍 🎉 🚀 ❤️ 🔥 ✅ ❌ 🌍 🐍 🦀 ☕ 👩‍💻 🏳️‍🌈 🇫🇷 🇯🇵
Symbols: € £ ¥ © ® ™ ° ± × ÷ ≤ ≥ ≠ ≈ ∞ √ ∑ ∫ π λ α β γ δ → ← ↑ ↓ • … “quotes” ‘single’ «guillemets»
Math: ∀x ∈ ℝ, x² ≥ 0. Let f(x) = x³ − 2x + 1; then f′(x) = 3x² − 2. E = mc². ½ + ¼ = ¾.
"""
