-- pending_insert: a change that needs approval, recorded before anyone is asked.
insert into pending_changes (
    change_id, fleet, game_type, asg_name, current_desired, proposed_desired, held_desired,
    reason, asked_by, created_at, expires_at, status
) values (
    $change_id, $fleet, $game_type, $asg_name, $current_desired, $proposed_desired,
    $held_desired, $reason, $asked_by, $created_at, $expires_at, 'pending'
);
