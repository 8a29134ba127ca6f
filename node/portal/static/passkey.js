// Passkeys: ask the server for options, let the browser's authenticator answer, send the answer back.
"use strict";
(function () {
  const status = document.getElementById("passkey-status");
  if (!window.PublicKeyCredential || !PublicKeyCredential.parseCreationOptionsFromJSON) return;
  async function post(url, csrf, body) {
    const r = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: JSON.stringify(body || {})});
    const data = await r.json();
    if (!r.ok) throw new Error(data.message || "That did not work.");
    return data;
  }
  const add = document.getElementById("passkey-add");
  if (add) {
    add.hidden = false;
    add.addEventListener("click", async () => {
      try {
        const options = await post("/passkeys/register/options", add.dataset.csrf);
        const cred = await navigator.credentials.create({publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options)});
        await post("/passkeys/register", add.dataset.csrf, cred.toJSON());
        status.textContent = "Your passkey is added. Next time you can sign in with it.";
      } catch (e) { status.textContent = e.message; }
    });
  }
  const signin = document.getElementById("passkey-signin");
  if (signin) {
    signin.hidden = false;
    signin.addEventListener("click", async () => {
      try {
        const login = document.getElementById("login").value;
        const options = await post("/passkeys/signin/options", signin.dataset.csrf, {login: login});
        const cred = await navigator.credentials.get({publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options)});
        const done = await post("/passkeys/signin", signin.dataset.csrf, {login: login, credential: cred.toJSON()});
        window.location.assign(done.next);
      } catch (e) { status.textContent = e.message; }
    });
  }
})();
