-- model_panel_prune: drop panel models no series' registry row points at any more.
delete from panel_models
where panel_id not in (
    select json_extract_string(model_json, '$.panel_id')
    from models
    where json_valid(model_json) and json_extract_string(model_json, '$.panel_id') is not null
);
