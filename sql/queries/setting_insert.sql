-- setting_insert: a learned setting beyond its band, waiting for a person.
insert into setting_changes (
    change_id, fleet, game_type, setting, reference, learned, used, players_per_instance,
    reason, created_at, status
) values (
    $change_id, $fleet, $game_type, $setting, $reference, $learned, $used,
    $players_per_instance, $reason, $created_at, 'pending'
);
