-- An operator's correction of the address an e-mail goes to: RetryFailedEmails
-- of one debt with an address (server/services/billing/outbox.c). NULL, as
-- every e-mail has it when written: the debt's own address. The debt keeps
-- the address its file gave, so that sending that file again still finds
-- the same debt (a repeat, not a rejection).
ALTER TABLE billing_notifications ADD COLUMN email text;
