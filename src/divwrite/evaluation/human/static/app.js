// The rater's page: one task at a time, every click saved at once, resumes where it stopped.
// Story texts are always set with textContent, never parsed as HTML.
"use strict";

(() => {
  const QUESTIONS = ["q1", "q2"];
  const RATER = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
  const state = {
    rater: null,
    tasks: [],
    answers: {}, // task_id -> {q1, q2, comment}: this rater's latest answers
    index: 0,
    queue: Promise.resolve(true), // saves run one after the other, in the order given
    pending: 0,
    saved: 0,
  };
  const $ = (id) => document.getElementById(id);

  function show(section) {
    for (const id of ["loading", "login", "task", "done"]) $(id).hidden = id !== section;
  }

  function fail(message) {
    $("error").textContent = message;
    $("error").hidden = false;
  }

  async function api(path, options) {
    const response = await fetch(path, options);
    let body;
    try {
      body = await response.json();
    } catch {
      body = {};
    }
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    return body;
  }

  const complete = (answer) => Boolean(answer) && QUESTIONS.every((q) => answer[q]);
  const current = () => state.tasks[state.index];

  function firstUnanswered(from) {
    for (let i = from; i < state.tasks.length; i++) {
      if (!complete(state.answers[state.tasks[i].task_id])) return i;
    }
    return -1;
  }

  function renderProgress() {
    const answered = state.tasks.filter((t) => complete(state.answers[t.task_id])).length;
    $("progress").textContent = `${answered} / ${state.tasks.length}`;
  }

  function setStatus(text, kind) {
    const status = $("save-status");
    status.textContent = text;
    status.dataset.state = kind;
    status.dataset.saved = String(state.saved);
  }

  function storyItem(story) {
    const item = document.createElement("li");
    const shown = document.createElement("div");
    shown.className = "story";
    shown.textContent = story.truncated ? `${story.excerpt} \u2026` : story.excerpt;
    item.append(shown);
    if (story.truncated) {
      const details = document.createElement("details");
      const summary = document.createElement("summary");
      summary.textContent = "Full story";
      const full = document.createElement("div");
      full.className = "full";
      full.textContent = story.text;
      details.append(summary, full);
      item.append(details);
    }
    return item;
  }

  function renderChoices(answer) {
    for (const q of QUESTIONS) {
      for (const button of $(q).querySelectorAll("button")) {
        button.setAttribute("aria-pressed", String(answer[q] === button.dataset.choice));
      }
    }
    $("next").disabled = !complete(answer);
  }

  function renderTask(index) {
    state.index = index;
    const task = current();
    const answer = state.answers[task.task_id] || {};
    $("task-position").textContent = `Task ${index + 1} of ${state.tasks.length}`;
    $("task").dataset.taskId = task.task_id;
    $("prompt").textContent = task.prompt;
    for (const side of ["A", "B"]) {
      $(`set-${side}`).querySelector("ol").replaceChildren(...task.sets[side].map(storyItem));
    }
    $("comment").value = answer.comment || "";
    $("prev").disabled = index === 0;
    renderChoices(answer);
    setStatus(complete(answer) ? "Saved" : "", complete(answer) ? "saved" : "");
    renderProgress();
    show("task");
    window.scrollTo(0, 0);
  }

  function showDone() {
    renderProgress();
    $("done-text").textContent =
      `You answered all ${state.tasks.length} tasks. Your answers are saved; you can close this tab.`;
    show("done");
  }

  // Save this task's whole answer; resolves to whether the server stored it.
  function save(taskId) {
    const answer = state.answers[taskId] || {};
    const body = JSON.stringify({
      rater: state.rater,
      task_id: taskId,
      q1: answer.q1 || null,
      q2: answer.q2 || null,
      comment: answer.comment || "",
    });
    state.pending += 1;
    setStatus("Saving\u2026", "saving");
    state.queue = state.queue.then(() =>
      api("/api/answers", { method: "POST", headers: { "Content-Type": "application/json" }, body })
        .then(() => {
          state.pending -= 1;
          state.saved += 1;
          if (state.pending === 0) setStatus("Saved", "saved");
          return true;
        })
        .catch((err) => {
          state.pending -= 1;
          setStatus(`Not saved (${err.message}): click again to retry`, "error");
          return false;
        }),
    );
    return state.queue;
  }

  function choose(question, choice) {
    const task = current();
    const answer = { ...(state.answers[task.task_id] || {}), [question]: choice, comment: $("comment").value };
    state.answers[task.task_id] = answer;
    renderChoices(answer);
    renderProgress();
    save(task.task_id);
  }

  // Save a changed comment, then wait for every save: true when all are stored.
  async function flush() {
    const task = current();
    const answer = state.answers[task.task_id] || {};
    if ((answer.comment || "") !== $("comment").value) {
      state.answers[task.task_id] = { ...answer, comment: $("comment").value };
      save(task.task_id);
    }
    return state.queue;
  }

  async function next() {
    if (!complete(state.answers[current().task_id])) return;
    $("next").disabled = true;
    const ok = await flush();
    $("next").disabled = false;
    if (!ok) return;
    let index = firstUnanswered(state.index + 1);
    if (index < 0) index = firstUnanswered(0);
    if (index < 0) showDone();
    else renderTask(index);
  }

  async function previous() {
    if (state.index === 0) return;
    if (await flush()) renderTask(state.index - 1);
  }

  async function start() {
    const rater = (new URLSearchParams(window.location.search).get("rater") || "").trim();
    if (!rater) {
      show("login");
      return;
    }
    if (!RATER.test(rater)) {
      show("login");
      fail(`"${rater}" is not a valid rater id: use letters, digits, _ . - (up to 64)`);
      return;
    }
    state.rater = rater;
    $("rater-label").textContent = `rater: ${rater}`;
    try {
      const [tasks, progress] = await Promise.all([
        api("/api/tasks"),
        api(`/api/progress?rater=${encodeURIComponent(rater)}`),
      ]);
      state.tasks = tasks.tasks;
      state.answers = progress.answers;
      for (const q of QUESTIONS) $(`${q}-text`).textContent = tasks.questions[q];
    } catch (err) {
      show("loading");
      fail(`Could not load the tasks: ${err.message}`);
      return;
    }
    const index = firstUnanswered(0);
    if (index < 0) showDone();
    else renderTask(index);
  }

  for (const q of QUESTIONS) {
    for (const button of $(q).querySelectorAll("button")) {
      button.addEventListener("click", () => choose(q, button.dataset.choice));
    }
  }
  $("comment").addEventListener("change", () => flush());
  $("next").addEventListener("click", next);
  $("prev").addEventListener("click", previous);
  $("review").addEventListener("click", () => renderTask(0));
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const url = new URL(window.location.href);
    url.searchParams.set("rater", $("rater-input").value.trim());
    window.location.assign(url.toString());
  });
  window.addEventListener("beforeunload", (event) => {
    if (state.pending > 0) event.preventDefault(); // a save is still on its way
  });
  start();
})();
