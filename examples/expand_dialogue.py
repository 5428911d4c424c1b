"""The seed's first mapper: expand each dialogue into prompt/response pairs.

A dialogue is a list of turns ({"role": "user"|"assistant", "text": ...}). For every assistant
turn, this mapper yields one training pair: the conversation so far as the prompt, the assistant's
turn as the response. One dialogue in, zero or more rows out.

    flywheel map --input examples/data/dialogues.parquet --output demo-out/pairs \
        --mapper examples/expand_dialogue.py:ExpandDialogue --workers 2
"""


def render(turns):
    return "\n".join(f"{t['role']}: {t['text']}" for t in turns)


class ExpandDialogue:
    def __init__(self, min_prompt_turns="1"):
        # --mapper-arg values arrive as strings.
        self.min_prompt_turns = int(min_prompt_turns)

    def start(self):
        # Load models, open files, etc. Runs once per worker, before any row.
        pass

    def __call__(self, row):
        turns = row["turns"] or []
        for i, turn in enumerate(turns):
            if turn["role"] == "assistant" and i >= self.min_prompt_turns:
                yield {
                    "dialogue_id": row["id"],
                    "turn": i,
                    "topic": row["topic"],
                    "prompt": render(turns[:i]),
                    "response": turn["text"],
                }
