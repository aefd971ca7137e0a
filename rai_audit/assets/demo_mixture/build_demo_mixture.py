"""Write the offline demo mixture: short, harmless instruction/response pairs the project authors.

Run ``python rai_audit/assets/demo_mixture/build_demo_mixture.py`` to regenerate the files next to it; the
output is deterministic (fixed seed), so the committed files and a rebuild are identical.

Tasks (each its own JSONL / TSV so the mixture can cap and weight them):

- ``general_qa.jsonl``: hand-written facts and everyday questions;
- ``word_tasks.jsonl``: antonyms, plurals, capitals, rhymes, spelling, sentiment of short
  sentences, polite rewrites, categories;
- ``list_tasks.jsonl``: sorting, counting, picking the largest/smallest (generated numbers);
- ``arithmetic_cot.tsv``: small word problems with a worked rationale (question, answer,
  rationale), in the Flan CoT layout, for chain-of-thought formats.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

GENERAL_QA = [
    ("How many days are there in a week?", "There are seven days in a week."),
    ("What color do you get by mixing blue and yellow?", "Mixing blue and yellow gives green."),
    ("Name the largest planet in our solar system.", "Jupiter is the largest planet in our solar system."),
    ("What do bees make?", "Bees make honey and beeswax."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("What is the freezing point of water in degrees Celsius?", "Water freezes at 0 degrees Celsius."),
    ("Which season comes after spring?", "Summer comes after spring."),
    ("What gas do plants take in from the air?", "Plants take in carbon dioxide from the air."),
    ("How many minutes are in an hour?", "There are 60 minutes in an hour."),
    ("What is the opposite of north?", "The opposite of north is south."),
    ("Give one tip for getting better sleep.", "Keep a regular bedtime and avoid screens for an hour before sleeping."),
    ("Suggest a healthy snack.", "A handful of almonds with an apple makes a healthy snack."),
    ("What is a synonym for 'happy'?", "A synonym for 'happy' is 'joyful'."),
    ("How many sides does a hexagon have?", "A hexagon has six sides."),
    ("What do you call a baby cat?", "A baby cat is called a kitten."),
    ("What do you call a baby dog?", "A baby dog is called a puppy."),
    ("Which instrument has black and white keys?", "The piano has black and white keys."),
    ("What is the boiling point of water at sea level in Celsius?", "Water boils at 100 degrees Celsius at sea level."),
    ("Name three primary colors.", "Red, blue and yellow are the traditional primary colors."),
    ("How many months have 31 days?", "Seven months have 31 days."),
    ("What is the main ingredient of guacamole?", "The main ingredient of guacamole is avocado."),
    ("Which organ pumps blood through the body?", "The heart pumps blood through the body."),
    ("What shape is a full moon?", "A full moon looks like a circle."),
    ("Give a polite way to end an email.", "You could end with: 'Thank you for your time. Best regards.'"),
    ("What is the capital letter form of 'q'?", "The capital form of 'q' is 'Q'."),
    ("How many hours are in a day?", "There are 24 hours in a day."),
    ("Which animal is known for its long neck?", "The giraffe is known for its long neck."),
    ("Suggest a name for a friendly robot.", "How about 'Bolt', a short and friendly name?"),
    ("What do caterpillars turn into?", "Caterpillars turn into butterflies or moths."),
    ("What is the plural of 'mouse'?", "The plural of 'mouse' is 'mice'."),
    ("Describe the sky on a clear day in one sentence.", "On a clear day the sky is a bright, cloudless blue."),
    ("Name a fruit that is yellow.", "A banana is a yellow fruit."),
    ("How many continents are there?", "There are seven continents."),
    ("What is the first letter of the English alphabet?", "The first letter is 'A'."),
    ("Recommend a simple way to save water at home.", "Turn off the tap while brushing your teeth."),
    ("What tool do you use to cut paper?", "You use scissors to cut paper."),
    ("Write a short greeting for a new neighbor.", "Welcome to the neighborhood! Let us know if you need anything."),
    ("Which is heavier, a kilogram of feathers or a kilogram of stones?", "They weigh the same: one kilogram each."),
    ("Give an example of a renewable energy source.", "Solar power is a renewable energy source."),
    ("What do you call frozen water?", "Frozen water is called ice."),
    ("How many wheels does a bicycle have?", "A bicycle has two wheels."),
    ("What is the color of a ripe tomato?", "A ripe tomato is usually red."),
    ("Name a musical instrument with strings.", "The violin is a musical instrument with strings."),
    ("Suggest a fun indoor activity for a rainy day.", "Build a blanket fort and read stories inside it."),
    ("What does a thermometer measure?", "A thermometer measures temperature."),
    ("What is the smallest prime number?", "The smallest prime number is 2."),
    ("Explain what a noun is in one sentence.", "A noun is a word that names a person, place, thing or idea."),
    ("Give a word that rhymes with 'light'.", "'Night' rhymes with 'light'."),
    ("What do people usually eat soup with?", "People usually eat soup with a spoon."),
    ("What is the opposite of 'ancient'?", "The opposite of 'ancient' is 'modern'."),
]

ANTONYMS = [("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"), ("light", "dark"),
            ("early", "late"), ("full", "empty"), ("open", "closed"), ("strong", "weak"), ("up", "down"),
            ("old", "young"), ("loud", "quiet"), ("wet", "dry"), ("hard", "soft"), ("high", "low"),
            ("rich", "poor"), ("near", "far"), ("thick", "thin"), ("clean", "dirty"), ("begin", "end")]
PLURALS = [("child", "children"), ("leaf", "leaves"), ("box", "boxes"), ("city", "cities"), ("tooth", "teeth"),
           ("wolf", "wolves"), ("bus", "buses"), ("foot", "feet"), ("baby", "babies"), ("knife", "knives"),
           ("goose", "geese"), ("story", "stories"), ("dish", "dishes"), ("man", "men"), ("potato", "potatoes")]
CAPITALS = [("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Canada", "Ottawa"), ("Kenya", "Nairobi"),
            ("Brazil", "Brasilia"), ("Egypt", "Cairo"), ("Spain", "Madrid"), ("India", "New Delhi"),
            ("Australia", "Canberra"), ("Norway", "Oslo"), ("Peru", "Lima"), ("Germany", "Berlin"),
            ("Mexico", "Mexico City"), ("Portugal", "Lisbon"), ("Ghana", "Accra"), ("Chile", "Santiago"),
            ("Ireland", "Dublin"), ("Vietnam", "Hanoi"), ("Greece", "Athens")]
SENTIMENT = [("I loved the movie, it was wonderful.", "positive"), ("The soup was cold and bland.", "negative"),
             ("What a beautiful morning!", "positive"), ("The train was late again.", "negative"),
             ("This book made me smile.", "positive"), ("My phone broke on the first day.", "negative"),
             ("The garden looks lovely in spring.", "positive"), ("The room was noisy and cramped.", "negative"),
             ("Our team won the match!", "positive"), ("I waited an hour for nothing.", "negative"),
             ("The staff were kind and helpful.", "positive"), ("The instructions were confusing.", "negative"),
             ("The cake tasted amazing.", "positive"), ("The battery dies too quickly.", "negative"),
             ("I enjoyed every minute of the trip.", "positive"), ("The paint started peeling in a week.", "negative")]
POLITE = [("Give me the salt.", "Could you please pass me the salt?"),
          ("Send the report now.", "Could you please send the report when you have a moment?"),
          ("Move your bag.", "Would you mind moving your bag, please?"),
          ("Tell me the time.", "Excuse me, could you tell me the time?"),
          ("Close the window.", "Would you please close the window?"),
          ("Call me back.", "Could you please call me back when you are free?"),
          ("Fix this by Friday.", "Would it be possible to fix this by Friday?"),
          ("Answer my question.", "When you get a chance, could you answer my question?"),
          ("Help me carry this box.", "Could you help me carry this box, please?"),
          ("Turn the music down.", "Would you mind turning the music down a little?")]
CATEGORIES = [("apple", "fruit"), ("carrot", "vegetable"), ("sparrow", "bird"), ("salmon", "fish"),
              ("oak", "tree"), ("violin", "instrument"), ("hammer", "tool"), ("rose", "flower"),
              ("banana", "fruit"), ("eagle", "bird"), ("spinach", "vegetable"), ("drum", "instrument"),
              ("wrench", "tool"), ("tulip", "flower"), ("trout", "fish"), ("maple", "tree")]
RHYMES = [("cat", "hat"), ("moon", "spoon"), ("tree", "bee"), ("cake", "lake"), ("star", "car"),
          ("rain", "train"), ("book", "cook"), ("fish", "dish"), ("bell", "shell"), ("goat", "boat")]


def word_tasks(rng: random.Random) -> list[dict[str, str]]:
    rows = []
    for a, b in ANTONYMS:
        rows.append({"instruction": "Give the opposite of the word.", "input": a, "output": b})
    for a, b in PLURALS:
        rows.append({"instruction": "Write the plural form of this noun.", "input": a, "output": b})
    for c, cap in CAPITALS:
        rows.append({"instruction": f"What is the capital of {c}?", "input": "", "output": f"The capital of {c} is {cap}."})
    for s, lab in SENTIMENT:
        rows.append({"instruction": "Is the sentiment of this sentence positive or negative?", "input": s, "output": lab})
    for s, p in POLITE:
        rows.append({"instruction": "Rewrite the request so it sounds polite.", "input": s, "output": p})
    for w, cat in CATEGORIES:
        rows.append({"instruction": "Which category does this belong to: fruit, vegetable, bird, fish, tree, "
                     "instrument, tool or flower?", "input": w, "output": cat})
    for a, b in RHYMES:
        rows.append({"instruction": "Give a word that rhymes with the given word.", "input": a, "output": b})
    for w in ["garden", "planet", "window", "yellow", "rabbit", "pencil", "summer", "orange", "bridge", "candle"]:
        rows.append({"instruction": "Spell the word backwards.", "input": w, "output": w[::-1]})
        rows.append({"instruction": "How many letters does this word have?", "input": w, "output": str(len(w))})
    rng.shuffle(rows)
    return rows


def list_tasks(rng: random.Random, n: int = 60) -> list[dict[str, str]]:
    rows = []
    for i in range(n):
        nums = rng.sample(range(1, 100), rng.randint(3, 6))
        text = ", ".join(map(str, nums))
        kind = i % 4
        if kind == 0:
            rows.append({"instruction": "Sort these numbers from smallest to largest.", "input": text,
                         "output": ", ".join(map(str, sorted(nums)))})
        elif kind == 1:
            rows.append({"instruction": "Which number is the largest?", "input": text, "output": str(max(nums))})
        elif kind == 2:
            rows.append({"instruction": "Which number is the smallest?", "input": text, "output": str(min(nums))})
        else:
            rows.append({"instruction": "How many numbers are in this list?", "input": text, "output": str(len(nums))})
    return rows


NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jade", "Kofi", "Lena", "Mo", "Nia"]
THINGS = ["apples", "pencils", "stickers", "marbles", "books", "shells", "cookies", "stamps", "buttons", "cards"]


def arithmetic_cot(rng: random.Random, n: int = 80) -> list[tuple[str, str, str]]:
    rows = []
    for i in range(n):
        who, thing = rng.choice(NAMES), rng.choice(THINGS)
        a, b = rng.randint(2, 30), rng.randint(2, 20)
        kind = i % 4
        if kind == 0:
            q = f"{who} has {a} {thing} and gets {b} more. How many {thing} does {who} have now?"
            ans, why = a + b, f"{who} starts with {a} {thing}. Getting {b} more gives {a} + {b} = {a + b}."
        elif kind == 1:
            a = a + b
            q = f"{who} has {a} {thing} and gives away {b}. How many {thing} are left?"
            ans, why = a - b, f"{who} starts with {a} {thing}. Giving away {b} leaves {a} - {b} = {a - b}."
        elif kind == 2:
            a, b = rng.randint(2, 9), rng.randint(2, 9)
            q = f"There are {a} boxes with {b} {thing} in each. How many {thing} are there in total?"
            ans, why = a * b, f"Each of the {a} boxes holds {b} {thing}, so there are {a} x {b} = {a * b}."
        else:
            b = rng.randint(2, 6)
            a = b * rng.randint(2, 9)
            q = f"{who} shares {a} {thing} equally among {b} friends. How many {thing} does each friend get?"
            ans, why = a // b, f"{a} {thing} split into {b} equal groups is {a} / {b} = {a // b} each."
        rows.append((q, str(ans), why))
    return rows


def main() -> None:
    rng = random.Random(20221020)  # Flan-PaLM paper date, for want of a better constant
    with open(HERE / "general_qa.jsonl", "w", encoding="utf-8") as f:
        for q, a in GENERAL_QA:
            f.write(json.dumps({"instruction": q, "input": "", "output": a}) + "\n")
    with open(HERE / "word_tasks.jsonl", "w", encoding="utf-8") as f:
        for row in word_tasks(rng):
            f.write(json.dumps(row) + "\n")
    with open(HERE / "list_tasks.jsonl", "w", encoding="utf-8") as f:
        for row in list_tasks(rng):
            f.write(json.dumps(row) + "\n")
    with open(HERE / "arithmetic_cot.tsv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\", lineterminator="\n")
        for row in arithmetic_cot(rng):
            w.writerow(row)


if __name__ == "__main__":
    main()
