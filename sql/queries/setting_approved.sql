-- setting_approved: each fleet's newest approved learned setting (the band's centre).
select fleet, arg_max(change_id, decided_at) as change_id,
       arg_max(learned, decided_at) as learned,
       arg_max(players_per_instance, decided_at) as players_per_instance
from setting_changes
where setting = $setting and status = 'approved'
group by fleet;
