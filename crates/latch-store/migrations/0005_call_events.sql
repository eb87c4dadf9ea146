-- A call in a chat ("Missed voice call", "Video call · 3:12") is a row of its chat like a
-- message, so it sorts, pages, marks read and disappears with the chat's timer as messages
-- do. It is local: never sent, no remote id, an empty body (nothing for the search index).
-- Text messages leave all three NULL.
-- call_media: 0 voice, 1 video.
-- call_outcome: 0 completed, 1 missed, 2 declined, 3 busy, 4 no answer, 5 cancelled, 6 failed.
ALTER TABLE messages ADD COLUMN call_media INTEGER CHECK (call_media IN (0, 1));
ALTER TABLE messages ADD COLUMN call_outcome INTEGER CHECK (call_outcome BETWEEN 0 AND 6);
ALTER TABLE messages ADD COLUMN call_duration_ms INTEGER CHECK (call_duration_ms >= 0);
