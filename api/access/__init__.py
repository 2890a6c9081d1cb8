"""Access: who is calling (`security`), and how much they may call (`budget`, `ratelimits`).

Features decorate their routes with `security.authenticate` and `budget.api_rate_limit`;
these modules sit on the request edge (`api.edge`) and the wiring below it.
"""
