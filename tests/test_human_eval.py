"""The human evaluation kit (`divwrite.evaluation.human`): task export, the answers file, the
rating page in a real headless Chromium, and the Table 2 analysis against hand computation."""

import json
import math
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from divwrite.core.tracking import file_md5
from divwrite.evaluation.human import analyze, export_tasks, load_tasks, make_server, serve, write_analysis
from divwrite.evaluation.human.answers import read_answers
from divwrite.evaluation.human.cli import main as human_cli
from divwrite.evaluation.human.tasks import excerpt

METHOD_A, METHOD_B = "ddpo-both", "dpo"
# Each method's stories carry a marker word (not its name: the page must not name methods).
MARKER = {METHOD_A: "Xylophone", METHOD_B: "Quokka"}


def write_generations(path: Path, method: str, prompt_ids, n_samples: int = 4, words: int = 30) -> Path:
    """A generation table like `data/generations/<method>.parquet`: `words` words per story."""
    rows = [
        {
            "prompt_id": pid,
            "prompt": f"Write a story about the {pid} lighthouse.",
            "sample_index": j,
            "text": f"{MARKER[method]} story {j} of {pid}.\n" + " ".join(f"w{k}" for k in range(words)),
        }
        for pid in prompt_ids
        for j in range(n_samples)
    ]
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def pids(n: int) -> list[str]:
    return [f"p{i:02d}" for i in range(n)]


@pytest.fixture
def generations(tmp_path):
    """Method a has prompts p00..p11 and an extra one; method b has p00..p11."""
    gen_a = write_generations(tmp_path / f"{METHOD_A}.parquet", METHOD_A, pids(12) + ["only-a"])
    gen_b = write_generations(tmp_path / f"{METHOD_B}.parquet", METHOD_B, pids(12))
    return gen_a, gen_b


def export(generations, out: Path, seed: int = 7, **kwargs) -> dict:
    return export_tasks(*generations, METHOD_A, METHOD_B, out, seed=seed, **kwargs)


# -- export -------------------------------------------------------------------------------


def test_export_writes_one_task_per_common_prompt_with_the_order_recorded(generations, tmp_path):
    out = tmp_path / "eval" / "tasks.json"
    export(generations, out, excerpt_words=10)
    document = json.loads(out.read_text())  # the file parses, and it is what load_tasks checks
    assert load_tasks(out) == document
    assert [t["task_id"] for t in document["tasks"]] == pids(12)  # "only-a" is not in both
    assert document["methods"] == {"method_a": METHOD_A, "method_b": METHOD_B}
    assert document["seed"] == 7
    assert document["sources"][METHOD_A] == {"path": str(generations[0]), "md5": file_md5(generations[0])}
    assert document["sources"][METHOD_B]["md5"] == file_md5(generations[1])
    for task in document["tasks"]:
        assert sorted(task["order"].values()) == sorted([METHOD_A, METHOD_B])
        for side in ("A", "B"):
            stories = task["sets"][side]
            assert [s["sample_index"] for s in stories] == [0, 1, 2, 3]
            # the set shown on this side is the recorded method's, full text kept beside the excerpt
            assert all(s["text"].startswith(MARKER[task["order"][side]]) for s in stories)
            assert all(len(s["excerpt"].split()) == 10 and s["truncated"] for s in stories)
            assert all(s["text"].startswith(s["excerpt"]) for s in stories)
    assert {t["order"]["A"] for t in document["tasks"]} == {METHOD_A, METHOD_B}  # both orders occur


def test_export_order_is_reproducible_with_the_seed_and_changes_with_it(generations, tmp_path):
    first = export(generations, tmp_path / "1.json", seed=7)
    again = export(generations, tmp_path / "2.json", seed=7)
    other = export(generations, tmp_path / "3.json", seed=8)
    assert (tmp_path / "1.json").read_bytes() == (tmp_path / "2.json").read_bytes()
    orders = [[t["order"]["A"] for t in d["tasks"]] for d in (first, again, other)]
    assert orders[0] == orders[1]
    assert orders[0] != orders[2]
    # a task's order does not depend on which other prompts are exported
    subset = export(generations, tmp_path / "4.json", seed=7, max_prompts=5)
    assert [t["order"]["A"] for t in subset["tasks"]] == orders[0][:5]
    assert [t["task_id"] for t in subset["tasks"]] == pids(5)


def test_excerpt_keeps_the_first_words_with_their_line_breaks():
    assert excerpt("One two\nthree  four five", 3) == ("One two\nthree", True)
    assert excerpt("One two three", 3) == ("One two three", False)
    assert excerpt("  short  \n", 10) == ("short", False)
    with pytest.raises(ValueError, match="excerpt_words"):
        excerpt("text", 0)


def test_export_takes_the_first_samples_by_index(tmp_path):
    gen_a = write_generations(tmp_path / "a.parquet", METHOD_A, pids(2), n_samples=6)
    table = pd.read_parquet(gen_a).sample(frac=1.0, random_state=0)  # rows in no particular order
    table.to_parquet(gen_a, index=False)
    gen_b = write_generations(tmp_path / "b.parquet", METHOD_B, pids(2))
    document = export_tasks(gen_a, gen_b, METHOD_A, METHOD_B, tmp_path / "t.json", seed=1, n_samples=3)
    for task in document["tasks"]:
        assert [s["sample_index"] for s in task["sets"]["A"]] == [0, 1, 2]
        assert [s["sample_index"] for s in task["sets"]["B"]] == [0, 1, 2]


def test_export_rejects_bad_input_with_a_clear_message(tmp_path):
    gen_a = write_generations(tmp_path / "a.parquet", METHOD_A, pids(3))
    gen_b = write_generations(tmp_path / "b.parquet", METHOD_B, pids(3))

    def fails(match, a=gen_a, b=gen_b, **kwargs):
        kwargs = {"method_a": METHOD_A, "method_b": METHOD_B, "seed": 0} | kwargs
        with pytest.raises(ValueError, match=match):
            export_tasks(a, b, out_path=tmp_path / "out.json", **kwargs)
        assert not (tmp_path / "out.json").exists()  # nothing written

    no_text = tmp_path / "no_text.parquet"
    pd.read_parquet(gen_b).drop(columns="text").to_parquet(no_text)
    fails(r"missing columns \['text'\]", b=no_text)
    short = tmp_path / "short.parquet"
    pd.read_parquet(gen_b).query("not (prompt_id == 'p01' and sample_index == 3)").to_parquet(short)
    fails(r"fewer than n_samples=4 samples, e.g. \['p01'\] \(3 samples\)", b=short)
    fails("no prompt_id in common", b=write_generations(tmp_path / "c.parquet", METHOD_B, ["x", "y"]))
    other_prompt = tmp_path / "other_prompt.parquet"
    pd.read_parquet(gen_b).assign(prompt="another prompt").to_parquet(other_prompt)
    fails("different prompt texts", b=other_prompt)
    duplicated = tmp_path / "duplicated.parquet"
    df = pd.read_parquet(gen_b)
    pd.concat([df, df.head(1)]).to_parquet(duplicated)
    fails("prompt 'p00' has sample_index 0 more than once", b=duplicated)
    fails("both 'dpo'", method_a=METHOD_B)
    fails("n_samples must be >= 1", n_samples=0)
    fails("max_prompts must be >= 1", max_prompts=0)
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        export_tasks(gen_a, tmp_path / "missing.parquet", METHOD_A, METHOD_B, tmp_path / "out.json", seed=0)


def test_a_task_file_edited_after_export_is_refused(generations, tmp_path):
    out = tmp_path / "tasks.json"
    document = export(generations, out)
    task = document["tasks"][0]
    task["order"] = {"A": task["order"]["B"], "B": task["order"]["A"]}  # would swap what the answers mean
    out.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="edited after export"):
        load_tasks(out)


# -- analysis -----------------------------------------------------------------------------

# The outcome of each of the 12 tasks in terms of methods: "a" (method a's set chosen), "b", "s" (similar).
Q1 = ["a", "a", "b", "a", "s", "a", "a", "s", "b", "a", "a", "s"]  # a 7, b 2, similar 3
Q2 = ["a", "a", "a", "b", "a", "a", "s", "a", "a", "a", "s", "a"]  # a 9, b 1, similar 2


def letter(task: dict, outcome: str) -> str:
    """The button the rater pressed for an outcome, through the task's recorded order."""
    if outcome == "s":
        return "similar"
    method = METHOD_A if outcome == "a" else METHOD_B
    return next(side for side, m in task["order"].items() if m == method)


def answer_line(digest: str, rater: str, task_id: str, q1, q2, comment: str = "") -> str:
    record = {"rater": rater, "task_id": task_id, "q1": q1, "q2": q2, "comment": comment, "tasks_digest": digest}
    return json.dumps(record) + "\n"


@pytest.fixture
def answered(generations, tmp_path):
    """12 tasks answered as Q1/Q2 say: r1 tasks 0-8 (after a first answer to task 0 that it
    replaced), r2 tasks 9-11, r3 only q1 of task 0 (similar); a torn last line."""
    tasks_path, answers_path = tmp_path / "tasks.json", tmp_path / "answers.jsonl"
    document = export(generations, tasks_path)
    tasks, digest = document["tasks"], document["digest"]
    lines = [answer_line(digest, "r1", tasks[0]["task_id"], letter(tasks[0], "b"), letter(tasks[0], "b"))]
    for i, task in enumerate(tasks):
        rater = "r1" if i < 9 else "r2"
        lines.append(answer_line(digest, rater, task["task_id"], letter(task, Q1[i]), letter(task, Q2[i]), "ok"))
    lines.append(answer_line(digest, "r3", tasks[0]["task_id"], "similar", None))
    answers_path.write_text("".join(lines) + '{"rater": "r3", "task_id": "p0')  # a write cut short
    return tasks_path, answers_path, document


def test_analysis_matches_hand_computation(answered):
    tasks_path, answers_path, document = answered
    tasks = document["tasks"]
    # the A/B swap is exercised: method a's q1 wins were given as "A" on some tasks and "B" on others
    assert {letter(tasks[i], "a") for i in range(12) if Q1[i] == "a"} == {"A", "B"}
    result = analyze(tasks_path, answers_path)
    q1, q2 = result["questions"]["q1"], result["questions"]["q2"]
    assert (q1["wins_a"], q1["wins_b"], q1["similar"], q1["decisive"], q1["n"]) == (7, 2, 4, 9, 13)
    assert q1["win_rate_decisive"] == pytest.approx(7 / 9)
    assert q1["win_rate_all"] == pytest.approx(7 / 13)
    assert q1["similar_rate"] == pytest.approx(4 / 13)
    p_q1 = 2 * sum(math.comb(9, k) for k in range(7, 10)) / 2**9
    assert p_q1 == 0.1796875
    assert q1["p_value"] == pytest.approx(p_q1, abs=1e-12)
    low, high = q1["win_rate_decisive_ci95"]
    assert 0 < low < 7 / 9 < high < 1
    assert (q2["wins_a"], q2["wins_b"], q2["similar"], q2["n"]) == (9, 1, 2, 12)
    assert q2["p_value"] == pytest.approx(2 * (math.comb(10, 9) + math.comb(10, 10)) / 2**10, abs=1e-12)
    assert result["judgments"] == 12 and result["incomplete"] == 1
    assert result["raters"] == 3 and result["tasks"] == 12
    assert result["superseded_answers"] == 1 and result["torn_lines"] == 1
    r1 = result["per_rater"]["r1"]
    assert r1["answered"] == 9
    assert r1["q1"] == {"wins_a": Q1[:9].count("a"), "wins_b": Q1[:9].count("b"), "similar": Q1[:9].count("s")}
    assert result["per_rater"]["r2"]["q2"] == {"wins_a": 2, "wins_b": 0, "similar": 1}
    assert result["per_rater"]["r3"] == {
        "answered": 0,
        "q1": {"wins_a": 0, "wins_b": 0, "similar": 1},
        "q2": {"wins_a": 0, "wins_b": 0, "similar": 0},
    }


def test_no_decisive_answer_gives_no_rate_and_no_test(generations, tmp_path):
    document = export(generations, tmp_path / "tasks.json")
    task = document["tasks"][0]["task_id"]
    (tmp_path / "answers.jsonl").write_text(answer_line(document["digest"], "r1", task, "similar", "similar"))
    q1 = analyze(tmp_path / "tasks.json", tmp_path / "answers.jsonl")["questions"]["q1"]
    assert (q1["similar"], q1["decisive"], q1["win_rate_all"], q1["similar_rate"]) == (1, 0, 0.0, 1.0)
    assert q1["win_rate_decisive"] is None and q1["p_value"] is None


def test_analysis_refuses_answers_of_another_task_file_and_an_empty_file(generations, tmp_path):
    export(generations, tmp_path / "tasks.json")
    (tmp_path / "answers.jsonl").write_text(answer_line("0" * 64, "r1", "p00", "A", "A"))
    with pytest.raises(ValueError, match="answers another task file"):
        analyze(tmp_path / "tasks.json", tmp_path / "answers.jsonl")
    with pytest.raises(ValueError, match="answers another task file"):
        make_server(tmp_path / "tasks.json", tmp_path / "answers.jsonl")  # nor serves more answers into it
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="no answers yet"):
        analyze(tmp_path / "tasks.json", tmp_path / "empty.jsonl")
    (tmp_path / "broken.jsonl").write_text("not json\n")
    with pytest.raises(ValueError, match=r"broken.jsonl:1: not a JSON answer"):
        analyze(tmp_path / "tasks.json", tmp_path / "broken.jsonl")


def test_analysis_report_files_and_mlflow_run(answered, store):
    tasks_path, answers_path, _ = answered
    out = store / "results"
    write_analysis(tasks_path, answers_path, out / "results.json", out / "results.md")
    report = json.loads((out / "results.json").read_text())
    assert report["questions"]["q1"]["wins_a"] == 7
    table = (out / "results.md").read_text()
    assert f"| {METHOD_A} wins | {METHOD_B} wins | similar |" in table
    assert "| 7 | 2 | 4 | 77.8% |" in table and "| 0.1797 |" in table
    (run,) = mlflow.search_runs(experiment_names=["divwrite"], output_format="list")
    assert run.info.run_name == "human-eval" and run.info.status == "FINISHED"
    assert run.data.params["method_a"] == METHOD_A and run.data.params["answers_md5"] == file_md5(answers_path)
    assert run.data.metrics["q1.wins_a"] == 7 and run.data.metrics["q1.similar"] == 4
    assert run.data.metrics["q1.p_value"] == pytest.approx(0.1796875)
    assert run.data.metrics["judgments"] == 12
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "human_eval")}
    assert artifacts == {"human_eval/results.json", "human_eval/results.md"}


def test_cli_exports_and_analyzes(generations, tmp_path, capsys):
    folder = generations[0].parent
    out = tmp_path / "cmp" / "tasks.json"
    args = ["export", METHOD_A, METHOD_B, "--generations", str(folder), "--out", str(out), "--seed", "3"]
    assert human_cli([*args, "--max-prompts", "4"]) == 0
    document = load_tasks(out)
    assert len(document["tasks"]) == 4 and document["seed"] == 3
    task = document["tasks"][0]
    (out.parent / "answers.jsonl").write_text(answer_line(document["digest"], "r1", task["task_id"], "A", "B"))
    assert human_cli(["analyze", str(out), "--no-mlflow"]) == 0
    result = json.loads((out.parent / "results.json").read_text())
    assert result["questions"]["q1"]["wins_a"] == (task["order"]["A"] == METHOD_A)
    assert "# Human evaluation: ddpo-both vs dpo" in capsys.readouterr().out
    assert human_cli(["export", METHOD_A, "missing", "--generations", str(folder), "--seed", "1"]) == 2
    assert "missing.parquet: no such file" in capsys.readouterr().err


# -- server -------------------------------------------------------------------------------


@pytest.fixture
def running(generations, tmp_path):
    """An exported task file served on 127.0.0.1, any free port, in a thread."""
    tasks_path, answers_path = tmp_path / "tasks.json", tmp_path / "answers.jsonl"
    document = export(generations, tasks_path, max_prompts=5, excerpt_words=8)
    server = make_server(tasks_path, answers_path, host="127.0.0.1", port=0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, document, answers_path
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def request(url: str, body: bytes | None = None, content_type: str = "application/json", host: str | None = None):
    """(status, parsed JSON or text) of one request."""
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if body is not None:
        req.add_header("Content-Type", content_type)
    if host:
        req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            status, raw, kind = response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as err:
        status, raw, kind = err.code, err.read(), err.headers.get_content_type()
    return status, json.loads(raw) if kind == "application/json" else raw.decode()


def test_server_api_saves_answers_hides_methods_and_rejects_bad_requests(running):
    server, document, answers_path = running
    url, first = server.url, document["tasks"][0]["task_id"]
    status, page = request(f"{url}/?rater=alice")
    assert status == 200 and '<script src="/static/app.js"' in page
    status, public = request(f"{url}/api/tasks")
    assert status == 200 and [t["task_id"] for t in public["tasks"]] == pids(5)
    raw = json.dumps(public)
    assert METHOD_A not in raw and METHOD_B not in raw and "order" not in raw  # the rater is blind
    assert request(f"{url}/api/progress?rater=alice")[1] == {"rater": "alice", "total": 5, "answered": 0, "answers": {}}

    answer = {"rater": "alice", "task_id": first, "q1": "A", "q2": None, "comment": ""}
    assert request(f"{url}/api/answers", json.dumps(answer).encode()) == (
        200,
        {"saved": True, "answered": 0, "total": 5},
    )
    assert read_answers(answers_path)[0][-1]["q1"] == "A"  # on disk when the server answered
    answer |= {"q2": "similar", "comment": "fine"}
    assert request(f"{url}/api/answers", json.dumps(answer).encode())[1]["answered"] == 1
    progress = request(f"{url}/api/progress?rater=alice")[1]
    assert progress["answers"] == {first: {"q1": "A", "q2": "similar", "comment": "fine"}}

    bad = [
        (b"not json", "application/json", "not JSON"),
        (b"[1, 2]", "application/json", "must be a JSON object"),
        (json.dumps(answer).encode(), "text/plain", "Content-Type: application/json"),
        (json.dumps(answer | {"q1": "C"}).encode(), "application/json", "q1 must be one of"),
        (json.dumps(answer | {"task_id": "nope"}).encode(), "application/json", "'nope' is not a task"),
        (json.dumps(answer | {"rater": "a b"}).encode(), "application/json", "rater id 'a b' is invalid"),
        (json.dumps(answer | {"method": "x"}).encode(), "application/json", r"unknown field\(s\) \['method'\]"),
        (json.dumps(answer | {"comment": "x" * 5001}).encode(), "application/json", "at most 5000"),
    ]
    for body, kind, message in bad:
        status, error = request(f"{url}/api/answers", body, kind)
        assert status == 400, (body[:40], error)
        assert re.search(message, error["error"]), error
    status, error = request(f"{url}/api/progress")
    assert status == 400 and "no rater id" in error["error"]
    assert request(f"{url}/api/tasks", host="attacker.example:80")[0] == 400  # DNS rebinding
    assert request(f"{url}/secret")[0] == 404
    assert len(read_answers(answers_path)[0]) == 2  # no bad request left a line


def test_serve_refuses_a_non_loopback_host(generations, tmp_path):
    tasks_path = tmp_path / "tasks.json"
    export(generations, tasks_path)
    for host in ("0.0.0.0", "192.168.1.20", "::"):
        with pytest.raises(ValueError, match="not a loopback address"):
            serve(tasks_path, tmp_path / "answers.jsonl", host=host, port=0)
    with pytest.raises(ValueError, match="not an IP address"):
        make_server(tasks_path, tmp_path / "answers.jsonl", host="example.org")
    assert not (tmp_path / "answers.jsonl").exists()


def test_server_cuts_a_torn_last_line_before_appending(generations, tmp_path):
    tasks_path, answers_path = tmp_path / "tasks.json", tmp_path / "answers.jsonl"
    document = export(generations, tasks_path)
    whole = answer_line(document["digest"], "r1", "p00", "A", "B")
    answers_path.write_text(whole + '{"rater": "r1", "ta')
    server = make_server(tasks_path, answers_path, port=0, quiet=True)
    server.server_close()
    assert answers_path.read_text() == whole


# -- the page in a real browser -----------------------------------------------------------


def test_rating_page_saves_every_click_and_resumes_in_a_new_browser(running, chrome):
    """Headless Chromium (conftest's `chrome`) on the rating page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server, document, answers_path = running
    tasks = document["tasks"]
    page = f"{server.url}/?rater=alice"
    # what the rater clicks on each task: (q1, q2, comment)
    plan = [["A", "B", ""], ["similar", "A", "nice twist"], ["B", "B", ""], ["A", "similar", ""], ["B", "A", ""]]

    def latest(task_index: int) -> dict:
        records = [r for r in read_answers(answers_path)[0] if r["task_id"] == tasks[task_index]["task_id"]]
        return records[-1]

    def text(driver, element_id: str) -> str:
        return driver.find_element(By.ID, element_id).text

    def wait(driver, condition) -> None:
        WebDriverWait(driver, 10).until(lambda d: condition(d))

    def click_and_check(driver, task_index: int, question: str, choice: str, saves: int) -> None:
        driver.find_element(By.ID, f"{question}-{choice}").click()
        wait(driver, lambda d: d.find_element(By.ID, "save-status").get_attribute("data-saved") == str(saves))
        assert latest(task_index)[question] == choice  # saved to disk right away

    def answer(driver, task_index: int, saves: int) -> int:
        q1, q2, comment = plan[task_index]
        assert text(driver, "task-position") == f"Task {task_index + 1} of 5"
        assert tasks[task_index]["prompt"] in text(driver, "prompt")
        click_and_check(driver, task_index, "q1", q1, saves + 1)
        click_and_check(driver, task_index, "q2", q2, saves + 2)
        saves += 2
        if comment:
            driver.find_element(By.ID, "comment").send_keys(comment)
            saves += 1  # saved when the box loses focus, i.e. when Next is clicked
        driver.find_element(By.ID, "next").click()
        wait(driver, lambda d: d.find_element(By.ID, "save-status").get_attribute("data-saved") == str(saves))
        assert latest(task_index)["comment"] == comment
        return saves

    first = chrome("profile-1")
    try:
        first.get(page)
        wait(first, lambda d: d.find_element(By.ID, "task").is_displayed())
        assert text(first, "progress") == "0 / 5"
        # set A on screen shows the stories of the method recorded as A (excerpt + full text on demand)
        shown_a = first.find_element(By.CSS_SELECTOR, "#set-A .story").text
        assert shown_a.startswith(MARKER[tasks[0]["order"]["A"]])
        assert len(first.find_elements(By.CSS_SELECTOR, "#set-B li")) == 4
        saves = answer(first, 0, 0)
        wait(first, lambda d: text(d, "task-position") == "Task 2 of 5")
        assert text(first, "progress") == "1 / 5"
        saves = answer(first, 1, saves)
        wait(first, lambda d: text(d, "task-position") == "Task 3 of 5")
        click_and_check(first, 2, "q1", plan[2][0], saves + 1)  # half of task 3, then the tab closes
    finally:
        first.quit()

    second = chrome("profile-2")  # a new browser: nothing kept on the client side
    try:
        second.get(page)
        wait(second, lambda d: d.find_element(By.ID, "task").is_displayed())
        assert text(second, "task-position") == "Task 3 of 5"  # the first unanswered task
        assert text(second, "progress") == "2 / 5"
        assert second.find_element(By.ID, f"q1-{plan[2][0]}").get_attribute("aria-pressed") == "true"
        assert second.find_element(By.ID, "next").get_attribute("disabled") is not None
        q1, q2, _ = plan[2]
        click_and_check(second, 2, "q2", q2, 1)
        second.find_element(By.ID, "next").click()
        saves = 1
        for index in (3, 4):
            wait(second, lambda d, i=index: text(d, "task-position") == f"Task {i + 1} of 5")
            saves = answer(second, index, saves)
        wait(second, lambda d: d.find_element(By.ID, "done").is_displayed())
        assert text(second, "progress") == "5 / 5"
        # a change of mind on task 1 replaces the earlier answer
        second.find_element(By.ID, "review").click()
        wait(second, lambda d: text(d, "task-position") == "Task 1 of 5")
        assert second.find_element(By.ID, f"q1-{plan[0][0]}").get_attribute("aria-pressed") == "true"
        plan[0][0] = "similar"
        click_and_check(second, 0, "q1", "similar", saves + 1)
    finally:
        second.quit()

    result = analyze(answers_path.parent / "tasks.json", answers_path)
    for q_index, q in enumerate(("q1", "q2")):
        outcomes = [
            "similar" if plan[i][q_index] == "similar" else tasks[i]["order"][plan[i][q_index]] for i in range(5)
        ]
        stats = result["questions"][q]
        assert (stats["wins_a"], stats["wins_b"], stats["similar"]) == (
            outcomes.count(METHOD_A),
            outcomes.count(METHOD_B),
            outcomes.count("similar"),
        )
    assert result["judgments"] == 5 and result["raters"] == 1 and result["incomplete"] == 0
