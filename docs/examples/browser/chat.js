// A chats_store.v1 client for the browser, in plain JavaScript (no build step, no
// library). It joins one chat, sends, edits and deletes messages, shows what others
// do, and when the connection drops it reconnects and resumes where it was.
//
// The protocol is the one of docs/protocol.md. What a browser does differently from
// the Python client: it cannot set an Authorization header, so it offers its session
// token as the subprotocol "chats_store.bearer.<token>" next to "chats_store.v1"; and
// the server must list the page's origin (chats-store serve --origin ...).
//
// Kept short on purpose: posts not yet acknowledged are sent again after a
// reconnection (a post is idempotent on its id), but an edit or a delete in flight
// when the connection drops is not (do it again); one chat per page.

"use strict";

const PROTOCOL = "chats_store.v1";
const BEARER = "chats_store.bearer.";

/** The user id (claim `sub`) of a session token: read, not verified (the server does). */
function userOf(sessionToken) {
  const payload = sessionToken.split(".")[1] || "";
  const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
  try {
    return JSON.parse(atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4))).sub;
  } catch (error) {
    return null;
  }
}

/**
 * One user in one chat over one WebSocket, reconnecting by itself.
 *
 * `onChange()` is called whenever what `view()` returns may have changed.
 */
class ChatClient {
  constructor({ url, sessionToken, chatId, chatToken, onChange }) {
    this.url = url;
    this.sessionToken = sessionToken;
    this.chatId = chatId;
    this.chatToken = chatToken;
    this.onChange = onChange;
    this.userId = userOf(sessionToken);
    this.messages = new Map(); // id -> message, as the server confirmed it
    this.pending = new Map(); // id -> content: posted, not acknowledged yet
    this.lastSeq = 0; // the seq of the last event applied
    this.epoch = null; // the server's history this state comes from
    this.membership = null; // the credential a resume needs
    this.membersAmount = null;
    this.status = "connecting"; // connecting, joining, ready, reconnecting, removed
    this.server = null; // the hello frame
    this.error = null; // the last refusal, as "code: message"
    this.requests = new Map(); // request id -> the request
    this.nextId = 1;
    this.delay = 250; // milliseconds before the next reconnection attempt
    this.socket = null;
    this.stopped = false;
  }

  // The connection ---------------------------------------------------------------

  connect() {
    const socket = new WebSocket(this.url, [PROTOCOL, BEARER + this.sessionToken]);
    this.socket = socket;
    socket.onopen = () => this.opened();
    socket.onmessage = (event) => this.received(JSON.parse(event.data));
    socket.onclose = () => this.closed(socket);
  }

  opened() {
    this.requests.clear();
    this.setStatus("joining");
    if (this.membership === null) {
      this.send({ type: "join", chat_id: this.chatId, token: this.chatToken });
    } else {
      this.resume(this.lastSeq);
    }
  }

  resume(sinceSeq) {
    this.send({
      type: "resume",
      chat_id: this.chatId,
      membership: this.membership,
      since_seq: sinceSeq,
      epoch: this.epoch,
    });
  }

  closed(socket) {
    if (socket !== this.socket || this.stopped || this.status === "removed") return;
    this.setStatus("reconnecting");
    const wait = this.delay * (1 + Math.random() / 4);
    this.delay = Math.min(this.delay * 2, 10000);
    setTimeout(() => this.connect(), wait);
  }

  stop() {
    this.stopped = true;
    if (this.socket) this.socket.close(1000, "bye");
  }

  send(request) {
    const id = this.nextId++;
    this.requests.set(id, request);
    this.socket.send(JSON.stringify({ ...request, id }));
  }

  setStatus(status) {
    this.status = status;
    this.onChange();
  }

  // What the user does -------------------------------------------------------------

  post(content) {
    const random = Math.random().toString(36).slice(2, 10);
    const id = `${this.userId}-${Date.now().toString(36)}-${random}`;
    this.pending.set(id, content);
    if (this.status === "ready") {
      this.send({ type: "post", chat_id: this.chatId, message_id: id, content });
    }
    this.onChange();
  }

  edit(messageId, content) {
    this.send({ type: "edit", chat_id: this.chatId, message_id: messageId, content });
  }

  remove(messageId) {
    this.send({ type: "delete", chat_id: this.chatId, message_id: messageId });
  }

  // What the server says -------------------------------------------------------------

  received(frame) {
    switch (frame.type) {
      case "hello":
        this.server = frame;
        break;
      case "ok":
        this.answered(this.requests.get(frame.id), frame.result);
        this.requests.delete(frame.id);
        break;
      case "error":
        this.refused(this.requests.get(frame.id), frame);
        this.requests.delete(frame.id);
        break;
      case "event":
        this.applyEvent(frame);
        break;
      default: // a newer server's frame: ignored, as the protocol says
        return;
    }
    this.onChange();
  }

  answered(request, result) {
    if (!request) return;
    switch (request.type) {
      case "join":
        this.applySnapshot(result);
        this.ready(result);
        break;
      case "resume":
        if (result.snapshot !== null) {
          this.applySnapshot(result.snapshot);
        } else if (this.epoch !== null && result.epoch !== null && result.epoch !== this.epoch) {
          // Events of another history: start again from nothing (see "Epochs").
          this.messages.clear();
          this.lastSeq = 0;
          this.epoch = result.epoch;
          this.membership = result.membership;
          this.resume(0);
          return;
        } else {
          for (const event of result.events) this.applyEvent(event);
        }
        this.membersAmount = result.members_amount;
        this.lastSeq = Math.max(this.lastSeq, result.last_seq);
        this.ready(result);
        break;
      case "post":
      case "edit":
        this.pending.delete(result.id);
        this.messages.set(result.id, result);
        break;
      case "delete":
        this.messages.delete(request.message_id);
        break;
    }
  }

  ready(result) {
    this.membership = result.membership;
    this.epoch = result.epoch;
    this.delay = 250;
    this.status = "ready";
    // Posts not acknowledged yet are sent again: a post is idempotent on its id.
    for (const [id, content] of this.pending) {
      this.send({ type: "post", chat_id: this.chatId, message_id: id, content });
    }
  }

  refused(request, frame) {
    this.error = `${frame.code}: ${frame.message}`;
    if (!request) return;
    if (request.type === "resume") {
      // The membership ended, or its credential no longer holds: join afresh.
      this.membership = null;
      this.send({ type: "join", chat_id: this.chatId, token: this.chatToken });
    } else if (request.type === "join") {
      this.setStatus("removed");
    } else if (request.type === "post") {
      this.pending.delete(request.message_id);
    }
  }

  applySnapshot(snapshot) {
    this.messages.clear();
    for (const message of snapshot.messages) this.messages.set(message.id, message);
    for (const id of this.pending.keys()) if (this.messages.has(id)) this.pending.delete(id);
    this.membersAmount = snapshot.members_amount;
    this.lastSeq = snapshot.last_seq;
  }

  applyEvent(frame) {
    if (frame.chat_id !== this.chatId || frame.seq <= this.lastSeq) return; // seen already
    this.lastSeq = frame.seq;
    const event = frame.event;
    switch (event.kind) {
      case "message_posted":
      case "message_edited":
        this.pending.delete(event.message.id);
        this.messages.set(event.message.id, event.message);
        break;
      case "message_removed":
        this.messages.delete(event.message_id);
        break;
      case "members_amount_changed":
        this.membersAmount = event.members_amount;
        break;
      case "removed_from_chat":
        this.error = `removed from the chat: ${event.reason}`;
        this.status = "removed";
        break;
      default: // own_restrictions_changed, own_metadata_changed, a newer kind: not shown
        break;
    }
  }

  /** The messages to show: confirmed ones by seq, then the pending ones. */
  view() {
    const confirmed = [...this.messages.values()].sort((a, b) => a.seq - b.seq);
    const pending = [...this.pending].map(([id, content]) => ({
      id,
      author_id: this.userId,
      content,
      seq: null,
    }));
    return confirmed.concat(pending);
  }
}

// The page ---------------------------------------------------------------------------

function settingsFromPage() {
  const fields = new URLSearchParams(location.hash.slice(1));
  for (const name of ["server", "session", "chat", "chat_token"]) {
    const value = fields.get(name);
    if (value !== null) document.getElementById(name).value = value;
  }
  return fields.has("server") && fields.has("session") && fields.has("chat_token");
}

function render(client) {
  const status = document.getElementById("status");
  status.dataset.status = client.status;
  status.textContent =
    `${client.status}` +
    (client.membersAmount === null ? "" : `, ${client.membersAmount} members`) +
    (client.server ? ` (${client.server.server}, ${client.server.protocol})` : "");
  document.getElementById("error").textContent = client.error || "";
  const list = document.getElementById("messages");
  list.replaceChildren(
    ...client.view().map((message) => {
      const item = document.createElement("li");
      item.dataset.id = message.id;
      item.dataset.pending = String(message.seq === null);
      const author = document.createElement("span");
      author.className = "author";
      author.textContent = message.author_id;
      const content = document.createElement("span");
      content.className = "content";
      content.textContent = message.content; // text, never HTML
      item.append(author, content);
      if (message.author_id === client.userId && message.seq !== null) {
        const edit = document.createElement("button");
        edit.className = "edit";
        edit.textContent = "Edit";
        edit.onclick = () => startEditing(message);
        const remove = document.createElement("button");
        remove.className = "delete";
        remove.textContent = "Delete";
        remove.onclick = () => client.remove(message.id);
        item.append(edit, remove);
      }
      return item;
    }),
  );
}

let client = null;

function startEditing(message) {
  const composer = document.getElementById("composer");
  composer.dataset.editing = message.id;
  document.getElementById("text").value = message.content;
  document.getElementById("send").textContent = "Save";
}

function submit(event) {
  event.preventDefault();
  const composer = document.getElementById("composer");
  const text = document.getElementById("text");
  if (client === null || text.value.trim() === "") return;
  if (composer.dataset.editing) {
    client.edit(composer.dataset.editing, text.value);
    delete composer.dataset.editing;
    document.getElementById("send").textContent = "Send";
  } else {
    client.post(text.value);
  }
  text.value = "";
}

function start(event) {
  if (event) event.preventDefault();
  if (client !== null) client.stop();
  client = new ChatClient({
    url: document.getElementById("server").value,
    sessionToken: document.getElementById("session").value,
    chatId: document.getElementById("chat").value,
    chatToken: document.getElementById("chat_token").value,
    onChange: () => render(client),
  });
  client.connect();
  render(client);
}

document.getElementById("settings").addEventListener("submit", start);
document.getElementById("composer").addEventListener("submit", submit);
if (settingsFromPage()) start();
