-- A record longer than an upload may carry from one chunk to the next is a
-- rejected row (server/services/common/upload.h), and the chunks after its
-- cut skip the rest of it: where its text stood at the cut (inside a quoted
-- field or not) is kept with the upload, 0 when nothing is being skipped.
ALTER TABLE billing_imports ADD COLUMN skip smallint NOT NULL DEFAULT 0;
ALTER TABLE voucher_import_files ADD COLUMN skip smallint NOT NULL DEFAULT 0;
