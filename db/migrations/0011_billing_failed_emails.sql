-- The e-mails that failed for good, found by bill number: GetImport names
-- an import's first ones and ListFailedEmails pages through them all
-- (server/services/billing/import.c). Partial, so it holds only failed
-- e-mails: the outbox's million-row inserts (state 1) add nothing to it.
CREATE INDEX billing_notifications_failed ON billing_notifications (debt) WHERE state = 3;
