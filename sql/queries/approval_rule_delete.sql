-- approval_rule_delete: a fleet's changes no longer wait for a person (changes already waiting
-- still do, until decided or expired). Returns the fleets whose rule was removed.
delete from approval_rules where fleet = $fleet returning fleet;
