-- Users of `--users sqlite:PATH` or `--users postgres://...` (one schema for both engines).
-- Written by `actorftpd user add|passwd|del|disable|enable`, read by every daemon at each login.
CREATE TABLE ftp_users (
    -- The login name: no spaces or control characters; anonymous and ftp are reserved.
    name TEXT PRIMARY KEY,
    -- Argon2id PHC string (`$argon2id$v=19$...`); never a plain password.
    password_hash TEXT NOT NULL,
    -- Exactly one of: an absolute folder on each replica, or s3://BUCKET/PREFIX.
    root TEXT,
    storage TEXT,
    endpoint TEXT,
    region TEXT,
    -- Permission names, comma-separated (all, read-only, read, upload, overwrite, delete,
    -- rename, mkdir, chmod).
    permissions TEXT NOT NULL,
    -- Source networks (CIDR), comma-separated; empty: any.
    allowed_networks TEXT NOT NULL DEFAULT '',
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    require_tls BOOLEAN NOT NULL DEFAULT FALSE,
    CHECK ((root IS NULL AND storage IS NOT NULL) OR (root IS NOT NULL AND storage IS NULL))
);
