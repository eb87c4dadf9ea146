-- Partial indexes for the two per-conversation lookups every conversation list makes: unread
-- incoming messages (direction 0, status 5 = received) and outgoing messages still pending
-- (direction 1, status 0). Without them each lookup walks the conversation's whole history,
-- which in a 100,000-message chat costs the app a visible share of its launch time.
CREATE INDEX messages_unread ON messages(conversation_id, sent_at, id)
    WHERE direction = 0 AND status = 5;
CREATE INDEX messages_pending ON messages(conversation_id, sent_at, id)
    WHERE direction = 1 AND status = 0;
