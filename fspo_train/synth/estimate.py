"""Requests a run will send, per stage, computed from the counts alone (before spending any).

Exact when every request succeeds and questions do not repeat; refinement is an upper bound
(every user refined in every round, with all their pairs relabelled).
"""

from __future__ import annotations

import math

from fspo_train.synth.domain import DomainConfig, FixedUsers

__all__ = ["estimate_requests"]


def estimate_requests(domain: DomainConfig) -> dict[str, int]:
    """Requests per stage for `domain`'s counts (first attempts; retries come on top).

    Example:
        >>> from fspo_train.synth import load_domain
        >>> est = estimate_requests(load_domain("elix").with_overrides(global_count=40))
        >>> est["questions"], est["responses"], est["labels"]
        (2, 200, 800)
    """
    users_cfg = domain.users
    if isinstance(users_cfg, FixedUsers):
        users, persona_requests = len(users_cfg.users), 0
    else:
        combos = math.prod(len(values) for values in users_cfg.traits.values())
        users = combos * users_cfg.personas_per_combination
        persona_requests = users
    if domain.max_users is not None:
        users = min(users, domain.max_users)
        persona_requests = min(persona_requests, users)
    q = domain.questions
    global_questions = max(q.global_count, 0)
    augmented = max(0, global_questions - min(len(q.seeds), global_questions))
    question_requests = math.ceil(augmented / q.batch_size) + users * bool(q.specific_per_user)
    all_questions = global_questions + users * q.specific_per_user
    per_question = domain.responses.per_question
    views = all_questions if domain.responses.mode == "view" else 0
    pairs = min(domain.labels.pairs_per_question, math.comb(per_question, 2))
    labelled = domain.labels.questions_per_user
    per_user_questions = min(labelled, global_questions) if labelled else global_questions
    per_user_questions += q.specific_per_user
    labels = users * per_user_questions * pairs * 2
    rounds = domain.refine_rounds
    return {
        "personas": persona_requests,
        "questions": question_requests,
        "views": views,
        "responses": all_questions * per_question,
        "labels": labels,
        "refine_at_most": rounds * (users + labels),
        "total_at_most": persona_requests
        + question_requests
        + views
        + all_questions * per_question
        + labels
        + rounds * (users + labels),
    }
