"""Token ids of texts by Hugging Face's `tokenizers` (Python) for a tokenizer.json (issue 16's
cross-check of ccr's tokenization). Input (stdin, JSON): {"tokenizer": PATH, "texts": [...]};
output: {"ids": [[...], ...]}."""

import json
import sys

from tokenizers import Tokenizer


def main():
    req = json.load(sys.stdin)
    tok = Tokenizer.from_file(req["tokenizer"])
    json.dump({"ids": [tok.encode(t, add_special_tokens=False).ids for t in req["texts"]]}, sys.stdout)


if __name__ == "__main__":
    main()
