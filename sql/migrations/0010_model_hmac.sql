-- 0010_model_hmac: models are authenticated, not only hashed. The sha256 sits in the same database
-- as the model, so whoever can rewrite one can rewrite the other; the HMAC-SHA256 of the model's
-- JSON is keyed with a secret kept outside the database (FLEETCAST_MODEL_KEY, or a key file
-- generated on first use under the work dir, mode 0600). A row without one is refused (retrain).
alter table models add column if not exists hmac varchar;
alter table panel_models add column if not exists hmac varchar;
