"""Conversations: kept per principal in the store's database, follow-ups made standalone before
retrieval, every turn answered through the governed request path and audited with its
conversation id.

    conversations = Conversations(store.db)
    c = conversations.create(alice.name)
    async for piece in ask(path, conversations, principal=alice, conversation_id=c.id, question=q, ...): ...
"""

from sekisho.conversations.flow import Asked, ask, make_standalone, turn_of
from sekisho.conversations.rewrite import condense_request, standalone_question
from sekisho.conversations.store import Conversation, ConversationNotFound, Conversations, Turn, export_markdown

__all__ = ["Asked", "Conversation", "ConversationNotFound", "Conversations", "Turn", "ask", "condense_request",
           "export_markdown", "make_standalone", "standalone_question", "turn_of"]
