-- The project manager assistant: each user's conversations with it (from the dashboard, the
-- API or another agent over A2A), their messages, the tools the user allowed without asking,
-- the tool call waiting for the user's confirmation; and the A2A tasks that drive turns.
CREATE TABLE assistant_conversations (
    id            BLOB PRIMARY KEY,
    owner_id      BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title         TEXT NOT NULL,
    allowed_tools TEXT NOT NULL DEFAULT '[]',
    pending       TEXT,
    context_id    TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    UNIQUE (owner_id, context_id)
);
CREATE INDEX assistant_conversations_owner ON assistant_conversations (owner_id, updated_at);

CREATE TABLE assistant_messages (
    id              BLOB PRIMARY KEY,
    conversation_id BLOB NOT NULL REFERENCES assistant_conversations(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'tool')),
    text            TEXT NOT NULL,
    tool_calls      TEXT NOT NULL DEFAULT '[]',
    tool_call_id    TEXT,
    tool_name       TEXT,
    created_at      TEXT NOT NULL,
    UNIQUE (conversation_id, seq)
);

CREATE TABLE a2a_tasks (
    id              BLOB PRIMARY KEY,
    owner_id        BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    conversation_id BLOB NOT NULL REFERENCES assistant_conversations(id) ON DELETE CASCADE,
    context_id      TEXT NOT NULL,
    state           TEXT NOT NULL
                    CHECK (state IN ('submitted', 'working', 'input_required', 'completed', 'failed', 'canceled')),
    answer          TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX a2a_tasks_owner ON a2a_tasks (owner_id, updated_at);
