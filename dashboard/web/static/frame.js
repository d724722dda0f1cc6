// One redraw per animation frame, however many messages arrive: each pane asks for a redraw
// under its own key, and a later ask in the same frame replaces the earlier one. In a hidden
// tab no frame comes, so nothing is drawn until the tab shows again (panes keep bounded state).

const jobs = new Map();
let scheduled = false;

/** Runs `draw` once in the next animation frame (the latest `draw` given for `key` wins). */
export function schedule(key, draw) {
  jobs.set(key, draw);
  if (!scheduled) {
    scheduled = true;
    requestAnimationFrame(flush);
  }
}

function flush() {
  scheduled = false;
  const due = [...jobs.values()];
  jobs.clear();
  for (const draw of due) {
    try {
      draw();
    } catch (error) {
      console.error(error); // one broken pane must not stop the others from drawing
    }
  }
}
