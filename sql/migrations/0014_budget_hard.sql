-- 0014_budget_hard: a budget marked hard cuts a person's capacity override too (issue 27). A soft
-- budget (the default, and every budget stored before) never cuts an override: the override
-- holds and the breach is written in the decision's reason (models/precedence.py, step 6).
alter table budgets add column if not exists hard boolean default false;
update budgets set hard = false where hard is null;
