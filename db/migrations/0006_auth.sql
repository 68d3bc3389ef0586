-- Access control (server/core/auth.c): API keys, and the trail of every
-- change made to them.

-- A key is "rpcq_<prefix>_<secret>": the prefix (8 hex digits) is public and
-- finds the row; only the SHA-256 of the whole key is kept. The secret is
-- 256 random bits, so a plain hash is as strong as a slow one. A name is
-- unique among the keys not revoked, so a revoked key's name can be reused.
CREATE TABLE api_keys (
	id bigserial PRIMARY KEY,
	name text NOT NULL CHECK (name ~ '^[A-Za-z0-9_.@-]{1,64}$'),
	prefix text COLLATE "C" NOT NULL UNIQUE CHECK (prefix ~ '^[0-9a-f]{8}$'),
	hash bytea NOT NULL CHECK (octet_length(hash) = 32),
	scopes text[] NOT NULL CHECK (cardinality(scopes) > 0),
	rate_per_s double precision NOT NULL DEFAULT 0 CHECK (rate_per_s >= 0), -- 0: no limit
	burst integer NOT NULL DEFAULT 0 CHECK (burst >= 0),
	expires_at timestamptz,
	revoked_at timestamptz,
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL;

-- Written by the trigger below, so that a change made with psql is in the
-- trail as much as one made by `rpcqd keys`.
CREATE TABLE api_key_audit (
	id bigserial PRIMARY KEY,
	at timestamptz NOT NULL DEFAULT now(),
	action text NOT NULL, -- created, revoked, changed, deleted
	key_name text NOT NULL,
	prefix text NOT NULL,
	detail text NOT NULL DEFAULT '',
	by_user text NOT NULL DEFAULT session_user,
	by_application text NOT NULL DEFAULT current_setting('application_name')
);

CREATE FUNCTION api_keys_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO api_key_audit (action, key_name, prefix, detail)
		VALUES ('created', NEW.name, NEW.prefix,
			'scopes ' || array_to_string(NEW.scopes, ' ')
			|| CASE WHEN NEW.rate_per_s > 0 THEN format(', %s calls/s, burst %s', NEW.rate_per_s, NEW.burst) ELSE '' END
			|| CASE WHEN NEW.expires_at IS NOT NULL THEN ', expires ' || NEW.expires_at ELSE '' END);
	ELSIF TG_OP = 'UPDATE' THEN
		IF OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL THEN
			INSERT INTO api_key_audit (action, key_name, prefix) VALUES ('revoked', NEW.name, NEW.prefix);
		ELSIF ROW(OLD.*) IS DISTINCT FROM ROW(NEW.*) THEN
			INSERT INTO api_key_audit (action, key_name, prefix, detail)
			VALUES ('changed', NEW.name, NEW.prefix,
				concat_ws(', ',
					CASE WHEN OLD.scopes IS DISTINCT FROM NEW.scopes THEN 'scopes ' || array_to_string(NEW.scopes, ' ') END,
					CASE WHEN OLD.rate_per_s IS DISTINCT FROM NEW.rate_per_s OR OLD.burst IS DISTINCT FROM NEW.burst
						THEN format('%s calls/s, burst %s', NEW.rate_per_s, NEW.burst) END,
					CASE WHEN OLD.expires_at IS DISTINCT FROM NEW.expires_at THEN 'expires ' || coalesce(NEW.expires_at::text, 'never') END,
					CASE WHEN OLD.revoked_at IS DISTINCT FROM NEW.revoked_at THEN 'revoked_at ' || coalesce(NEW.revoked_at::text, 'none') END,
					CASE WHEN OLD.hash IS DISTINCT FROM NEW.hash THEN 'secret replaced' END));
		END IF;
	ELSE
		INSERT INTO api_key_audit (action, key_name, prefix) VALUES ('deleted', OLD.name, OLD.prefix);
	END IF;
	RETURN NULL;
END $$;

CREATE TRIGGER api_keys_audit AFTER INSERT OR UPDATE OR DELETE ON api_keys
	FOR EACH ROW EXECUTE FUNCTION api_keys_audit();

-- Every rpcqd LISTENs on rpcq_api_keys and reloads its keys (a few rows)
-- when told: a revoked key stops working everywhere at once.
CREATE FUNCTION api_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('rpcq_api_keys', '');
	RETURN NULL;
END $$;

CREATE TRIGGER api_keys_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON api_keys
	FOR EACH STATEMENT EXECUTE FUNCTION api_keys_notify();
