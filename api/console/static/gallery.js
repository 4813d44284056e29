// The gallery's "select page" box and the count of ticked items (the bulk form works without it).
const all = document.getElementById("select-all");
const boxes = [...document.querySelectorAll('input[name="media_ids"]')];
const count = document.getElementById("selected-count");
const initial = count.textContent;

function update() {
  const ticked = boxes.filter((box) => box.checked).length;
  count.textContent = ticked ? `${ticked} selected` : initial;
  all.checked = ticked > 0 && ticked === boxes.length;
  all.indeterminate = ticked > 0 && ticked < boxes.length;
}

if (boxes.length) {
  all.disabled = false;
  all.addEventListener("change", () => {
    for (const box of boxes) box.checked = all.checked;
    update();
  });
  for (const box of boxes) box.addEventListener("change", update);
}
