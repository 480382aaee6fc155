// The SAMP Web Profile (SAMP 1.3, section 5): the page registers with the SAMP hub of the
// annotator's own desktop (TOPCAT's or Aladin's, on http://localhost:21012) and talks to it by
// XML-RPC over HTTP, so tables and spectra reach the desktop the browser runs on wherever the
// server runs. Messages from the desktop's tools are pulled from the hub every second.
"use strict";

const WebSamp = {
  port: 21012,
  key: null,       // samp.private-key, once registered
  id: null,        // samp.self-id
  timer: null,
  onMessage: null, // (mtype, params) => ..., for the notifications the page subscribes to

  encode(v) {  // a <value> element: SAMP's types are strings, lists and maps
    if (Array.isArray(v)) {
      return `<value><array><data>${v.map((x) => this.encode(x)).join("")}</data></array></value>`;
    }
    if (v !== null && typeof v === "object") {
      return `<value><struct>${Object.entries(v).map(([k, x]) =>
        `<member><name>${this.esc(k)}</name>${this.encode(x)}</member>`).join("")}</struct></value>`;
    }
    return `<value><string>${this.esc(String(v ?? ""))}</string></value>`;
  },
  esc: (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"),

  decode(node) {  // a <value> element
    const child = [...node.children][0];
    if (!child) return node.textContent;
    switch (child.tagName) {
      case "struct": return Object.fromEntries([...child.children].map((m) =>
        [m.querySelector("name").textContent, this.decode(m.querySelector("value"))]));
      case "array": return [...child.querySelector("data").children].map((x) => this.decode(x));
      case "int": case "i4": return Number(child.textContent);
      case "boolean": return child.textContent === "1";
      case "double": return Number(child.textContent);
      default: return child.textContent;
    }
  },

  async call(method, params) {
    const body = `<?xml version="1.0"?><methodCall><methodName>${method}</methodName><params>${
      params.map((p) => `<param>${this.encode(p)}</param>`).join("")}</params></methodCall>`;
    const r = await fetch(`http://localhost:${this.port}/`, {
      method: "POST", headers: { "Content-Type": "text/xml" }, body });
    const doc = new DOMParser().parseFromString(await r.text(), "text/xml");
    const fault = doc.querySelector("fault > value");
    if (fault) throw new Error(`SAMP hub: ${this.decode(fault).faultString ?? "fault"}`);
    const value = doc.querySelector("params > param > value");
    return value ? this.decode(value) : null;
  },

  async connect(port, onMessage) {
    this.port = port;
    this.onMessage = onMessage;
    const reg = await this.call("samp.webhub.register", [{ "samp.name": "specscout" }]);
    this.key = reg["samp.private-key"];
    this.id = reg["samp.self-id"];
    await this.call("samp.webhub.declareMetadata", [this.key, {
      "samp.name": "specscout", "samp.description.text":
        "specscout labelling app: finds rare objects in survey spectra" }]);
    await this.call("samp.webhub.allowReverseCallbacks", [this.key, "1"]);
    await this.call("samp.webhub.declareSubscriptions", [this.key, {
      "table.highlight.row": {}, "coord.pointAt.sky": {} }]);
    this.timer = setInterval(() => this.pull().catch(() => this.lost()), 1000);
  },

  async pull() {
    if (!this.key) return;
    for (const cb of await this.call("samp.webhub.pullCallbacks", [this.key, "0"]) || []) {
      const [sender, second, third] = cb["samp.params"];
      const msg = cb["samp.methodName"] === "receiveCall" ? third : second;
      if (cb["samp.methodName"] === "receiveCall") {
        await this.call("samp.webhub.reply", [this.key, second, {
          "samp.status": "samp.ok", "samp.result": {} }]);
      }
      if (msg && this.onMessage) this.onMessage(msg["samp.mtype"], msg["samp.params"], sender);
    }
  },

  lost() {
    clearInterval(this.timer);
    this.key = null;
    document.dispatchEvent(new CustomEvent("websamp", { detail: { connected: false } }));
  },

  async notifyAll(mtype, params) {
    return await this.call("samp.webhub.notifyAll", [this.key,
      { "samp.mtype": mtype, "samp.params": params }]) || [];
  },

  async disconnect() {
    if (!this.key) return;
    clearInterval(this.timer);
    try { await this.call("samp.webhub.unregister", [this.key]); } finally { this.key = null; }
  },
};
