"""Makes the text datasets of the LLM_Finetune example (examples/data/llm_provider_{a,b}.jsonl):
a fixed code book the tiny base model (tests/fixtures/llm/llama) cannot know. Each record is
a prompt of three filler words from the tokenizer's corpus, then `question: what is the code of
<key>? answer:`, and the completion ` <code>` (two digits). 20 keys, each with a fixed code;
provider A and provider B each hold 8 filler variations of every key (160 records each).
Standard library only; deterministic. Usage: python tests/py/make_llm_task.py [OUT_DIR]
"""

import json
import os
import random
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "examples", "data")

KEYS = ["fever", "cough", "clinic", "patient", "record", "model", "budget", "privacy", "delta", "epsilon",
        "data", "hospital", "answer", "capital", "colour", "sky", "fox", "dog", "paris", "blue"]
FILLER = ("the clinic records a patient with a mild fever and a cough each hospital keeps its own "
          "records and shares none of them confidential computing keeps data encrypted while it is used").split()


def main():
    rng = random.Random(16)
    codes = rng.sample(range(10, 100), len(KEYS))
    for name, variations in (("a", range(0, 8)), ("b", range(8, 16))):
        lines = []
        for v in variations:
            r = random.Random(1000 + v)
            for key, code in zip(KEYS, codes):
                filler = " ".join(r.choice(FILLER) for _ in range(3))
                lines.append(json.dumps({"prompt": f"{filler} question: what is the code of {key}? answer:",
                                         "completion": f" {code}"}))
        with open(os.path.join(OUT, f"llm_provider_{name}.jsonl"), "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
