-- budget_clear: remove one budget (fleetcast budget clear); returns its name when it existed.
delete from budgets where name = $name returning name;
