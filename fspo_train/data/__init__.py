"""Data: preference records, loaders, few-shot episodes, and their tokenized training rows.

- `records`: the per-user preference JSONL schema (`PreferenceRecord`).
- `loaders`: our JSONL and the paper's released layouts (ELIX, Reviews, Roleplay).
- `episodes`: K shots plus one held-out query per user; splits by user and by question.
- `tokenization`: prompt and completion token ids, exactly as serving tokenizes them.
- `training_data`: the TRL datasets of both stages, built from the tokenized episodes.
"""
