"""Fetch a tokenizer from the Hugging Face hub into assets/tokenizer/<name>.

    python scripts/download_tokenizer.py --repo meta-llama/Llama-3.1-8B --out assets/tokenizer/llama3
    python scripts/download_tokenizer.py --repo meta-llama/Llama-2-7b-hf --out assets/tokenizer/llama2

The Llama repositories are gated: accept the license on the hub, then export HF_TOKEN.
Downloads tokenizer.json / tokenizer_config.json (Hugging Face format) and, where the
repository has it, tokenizer.model (Llama 3: original/tokenizer.model, tiktoken format;
Llama 2: SentencePiece). gpa_titan loads any of them (gpa_titan/titan/tokenizers.py).
"""

from __future__ import annotations

import argparse
import os
import sys

FILES = ["tokenizer.json", "tokenizer_config.json", "tokenizer.model", "original/tokenizer.model"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", required=True, help="hub repository, e.g. meta-llama/Llama-3.1-8B")
    ap.add_argument("--out", required=True, help="destination folder")
    ap.add_argument("--token", default=os.environ.get("HF_TOKEN"), help="hub token (default: $HF_TOKEN)")
    args = ap.parse_args(argv)

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError

    os.makedirs(args.out, exist_ok=True)
    got = []
    for name in FILES:
        try:
            hf_hub_download(args.repo, name, local_dir=args.out, token=args.token)
            got.append(name)
        except RemoteEntryNotFoundError:
            continue  # the repository exists but lacks this file
        except Exception as e:  # offline, gated without access, unknown repository
            kind = type(e).__name__
            print(
                f"download_tokenizer: could not fetch {name} from {args.repo} ({kind}: {e}).\n"
                "Check the network (HF_HUB_OFFLINE must be unset), that the repository exists, and for "
                "gated Llama repositories that you accepted the license and exported HF_TOKEN.",
                file=sys.stderr,
            )
            return 1
    if not got:
        print(f"download_tokenizer: {args.repo} has none of {FILES}", file=sys.stderr)
        return 1
    print(f"saved {', '.join(got)} to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
